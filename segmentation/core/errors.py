"""Exceptions raised by the segmentation core.

Every error a user can cause (a wrong shape, a NaN, an unknown model) is one of these, with a
message that fits on one line, so the CLI and the web layer can show it as it is.
"""

__all__ = ["SegmentationError", "InvalidInputError", "ModelNotAvailableError", "InvalidParameterError"]


class SegmentationError(Exception):
    """Base class of every error the core raises on purpose."""


class InvalidInputError(SegmentationError, ValueError):
    """The image or label array cannot be processed (shape, dtype, NaN, empty ...)."""


class InvalidParameterError(SegmentationError, ValueError):
    """A parameter is out of range or of the wrong kind."""


class ModelNotAvailableError(SegmentationError):
    """The requested model cannot be loaded (unknown name, missing weights, offline)."""
