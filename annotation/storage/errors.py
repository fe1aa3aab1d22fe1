"""The errors of the storage layer: one base class, one subclass per thing that can go wrong.

Every message is one line that says what was wrong with what was given, fit to show a user
(the web layer renders ``str(error)``). Callers catch :class:`StorageError` for all of them.
"""

from __future__ import annotations

__all__ = [
    "ChannelError", "DestinationExistsError", "DimensionalityError", "ImageTooLargeError",
    "InvalidImageError", "InvalidLabelsError", "LabelIdRangeError", "LabelShapeError",
    "LabelVersionError", "NotAVolumeError", "StorageError", "TileOutOfRangeError",
]


class StorageError(Exception):
    """Base class of every error raised by :mod:`annotation.storage`."""


class InvalidImageError(StorageError):
    """The source is not an image we can read: missing, not a TIFF/OME-Zarr, corrupt or truncated."""


class DimensionalityError(InvalidImageError):
    """The image is not 2D (Y, X) or 3D (Z, Y, X) once its channel is chosen: 1D, 4D+, time series."""


class ChannelError(InvalidImageError):
    """The image has channels and ``channel=`` is missing, or names a channel that does not exist."""


class ImageTooLargeError(StorageError):
    """The image has more voxels than the configured ``max_voxels``, or decodes to more bytes
    than ``max_bytes``."""


class DestinationExistsError(StorageError):
    """Something already exists where a new volume or export should go."""


class NotAVolumeError(StorageError):
    """The path is not a volume written by this package."""


class InvalidLabelsError(StorageError):
    """Labels that cannot be stored: not integers, negative, or ids beyond uint32."""


class LabelShapeError(InvalidLabelsError):
    """Labels (or an edit's values or region) whose shape does not match the volume's."""


class LabelVersionError(StorageError):
    """A label version that does not exist."""


class TileOutOfRangeError(StorageError, IndexError):
    """A level, plane or tile outside the volume."""


class LabelIdRangeError(StorageError, ValueError):
    """A label id that a label tile cannot carry (ids must be below 2**24)."""
