"""Volumes on disk: OME-Zarr pyramids, tiles, and immutable label versions. No Django here.

Layout of one volume (NGFF 0.5 on zarr v3, which ome-zarr-py 0.18 reads)::

    <volume>/                  zarr.json: "ome" (multiscales, omero window), "ezquant" (VolumeMeta)
        0/ 1/ ...              intensities (Z, Y, X), y and x halved per level (2 x 2 mean), z kept,
                               until a plane fits in one 256 x 256 tile; chunks (1, 256, 256),
                               Blosc LZ4 + bit-shuffle; dtype of the source
        xz/<k> yz/<k>          the same levels chunked (min(Z, 64), 16, 256) and (min(Z, 64), 256, 16),
                               so XZ and YZ tiles read one chunk (see :mod:`.ortho`); stacks only;
                               a label version's are 16 planes deep
        labels/                zarr.json: "ezquant": {"versions": [every vN]}, "ome": {"labels":
                               [the complete ones]}
            v1/ v2/ ...        image-label + multiscales, uint32, levels [::2**k, ::2**k], each
                               with its own xz/ and yz/; a complete version (a segmentation, an
                               upload) hard-links the chunk files equal to its parent's; an
                               edit's version holds only the chunks it changed and a
                               manifest.json over its complete base (see :mod:`.labels`,
                               :mod:`.manifest`)

=====================  ===========================================================================
Write                  :func:`import_image` (TIFF, OME-TIFF, ImageJ TIFF, OME-Zarr),
                       :meth:`VolumeStore.create` (numpy array)
Read                   :meth:`VolumeStore.open`, ``.meta`` (:class:`VolumeMeta`), ``read_region``,
                       ``read_tile``, ``read_ortho_tile`` (XZ, YZ), ``read_volume``
Labels                 ``write_labels``, ``write_label_edit`` -> :class:`LabelVersionMeta`,
                       ``label_versions``, ``label_version_meta``, ``read_labels``,
                       ``read_label_region``, ``read_label_tile``, ``read_label_ortho_tile``,
                       ``export_labels_tiff``, ``export_labels_zarr`` (complete copies),
                       ``materialise_label_versions`` (edits' versions complete in place)
Tiles for browsers     :mod:`.tiles`: ``encode_image_tile``, ``encode_label_tile``,
                       ``decode_label_tile``, ``encode_score_tile``, ``score_lookup``
Errors                 :class:`StorageError` and its subclasses (one-line messages)
=====================  ===========================================================================

Interface notes for the web layer: ``VolumeMeta.level_shapes`` is a tuple of (Z, Y, X) tuples
(``to_dict`` gives lists); added beyond the agreed interface are ``VolumeMeta.n_levels``,
``is_3d``, ``tile_grid``, ``LabelVersionMeta.chunks_copied``, ``VolumeStore.label_version_meta``
and ``read_label_region``, and the finer error classes (all subclasses of the agreed ones).
"""

from .errors import (
    ChannelError,
    DestinationExistsError,
    DimensionalityError,
    ImageTooLargeError,
    InvalidImageError,
    InvalidLabelsError,
    LabelIdRangeError,
    LabelShapeError,
    LabelVersionError,
    NotAVolumeError,
    StorageError,
    TileOutOfRangeError,
)
from .meta import TILE_SIZE, LabelVersionMeta, VolumeMeta
from .tiles import decode_label_tile, encode_image_tile, encode_label_tile, encode_score_tile, score_lookup
from .volume import VolumeStore, import_image

__all__ = [
    "ChannelError", "DestinationExistsError", "DimensionalityError", "ImageTooLargeError",
    "InvalidImageError", "InvalidLabelsError", "LabelIdRangeError", "LabelShapeError",
    "LabelVersionError", "LabelVersionMeta", "NotAVolumeError", "StorageError", "TILE_SIZE",
    "TileOutOfRangeError", "VolumeMeta", "VolumeStore", "decode_label_tile", "encode_image_tile",
    "encode_label_tile", "encode_score_tile", "import_image", "score_lookup",
]
