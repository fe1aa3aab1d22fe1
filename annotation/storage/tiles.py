"""Tiles as image files a browser can draw: intensities as 8-bit greyscale, labels as packed RGB.

Intensity tiles
    ``(value - lo) / (hi - lo)`` scaled to 0..255 and clipped (NaN -> 0), so ``lo`` and below
    are black and ``hi`` and above white; when ``hi <= lo`` the tile is a threshold at ``lo``.
    PNG (lossless, zlib level 1, "up" row filter, run-length strategy: imagecodecs' libpng
    encoder, 3-6x faster than Pillow's at a smaller size) or WebP (lossy, quality 90, fastest
    method, Pillow): both 8-bit greyscale. WebP is smaller on noisy microscopy; PNG is exact.

Uncertainty (heat map) tiles
    Each nucleus in the colour of its score in [0, 1] (blue 0, pale yellow 0.5, red 1: a
    diverging map readable over greyscale), alpha 200; background and unscored nuclei (those a
    person drew) transparent. An RGBA PNG: this one is for looking at, not for decoding.

Label tiles
    Each uint32 id is packed into the red, green and blue bytes of a 24-bit RGB PNG:
    R = bits 0-7, G = bits 8-15, B = bits 16-23. A canvas reads such a PNG back with
    ``getImageData`` as (R, G, B, 255): an opaque pixel is never premultiplied, so the bytes
    come back exactly; no gAMA/iCCP/sRGB chunk is written, so browsers apply no colour
    correction. Decode in JavaScript as ``id = r | (g << 8) | (b << 16)``. Ids must therefore
    be below 2**24 (16,777,215): :func:`encode_label_tile` raises :class:`LabelIdRangeError`
    otherwise (a segmentation of that many nuclei is far beyond one volume). A fourth byte in
    alpha would not survive: browsers premultiply alpha and lose the colour of pixels with
    alpha 0.
"""

from __future__ import annotations

import io

import numpy as np

from .errors import LabelIdRangeError

__all__ = ["LABEL_ID_LIMIT", "decode_label_tile", "encode_image_tile", "encode_label_tile", "encode_score_tile",
           "score_lookup"]

#: Label ids in a tile must be below this.
LABEL_ID_LIMIT = 2 ** 24
_FORMATS = ("png", "webp")


def _check_tile(tile: np.ndarray) -> np.ndarray:
    tile = np.asarray(tile)
    if tile.ndim != 2 or tile.size == 0:
        raise ValueError(f"a tile is a non-empty (Y, X) array, got shape {tile.shape}")
    return tile


def _png(pixels: np.ndarray) -> bytes:
    """PNG of a (Y, X) or (Y, X, 3) uint8 array, tuned for speed (no colour chunks written)."""
    import imagecodecs  # only the tile server encodes

    return imagecodecs.png_encode(np.ascontiguousarray(pixels), level=1, filter=imagecodecs.PNG.FILTER.UP,
                                  strategy=imagecodecs.PNG.STRATEGY.RLE)


def _webp(pixels: np.ndarray) -> bytes:
    from PIL import Image  # Pillow: only the tile server needs it

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="WEBP", quality=90, method=0)
    return buffer.getvalue()


def to_display(tile: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map a (Y, X) tile to uint8 through the window [lo, hi] (see the module docstring)."""
    tile = _check_tile(tile)
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        return np.where(tile > lo, 255, 0).astype(np.uint8)
    scaled = tile.astype(np.float32)
    scaled -= np.float32(lo)
    scaled *= np.float32(255.0 / (hi - lo))
    np.clip(scaled, 0, 255, out=scaled)
    np.nan_to_num(scaled, copy=False, nan=0.0)
    scaled += 0.5  # round to nearest before the truncating cast
    return scaled.astype(np.uint8)


def encode_image_tile(tile: np.ndarray, lo: float, hi: float, fmt: str = "png") -> bytes:
    """Encode an intensity tile as an 8-bit greyscale PNG or WebP.

    Parameters
    ----------
    tile : (Y, X) array of any real dtype; not modified.
    lo, hi : display window, e.g. ``VolumeMeta.contrast_limits``.
    fmt : ``"png"`` or ``"webp"``.
    """
    if fmt not in _FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(_FORMATS)}, got {fmt!r}")
    pixels = to_display(tile, lo, hi)
    return _png(pixels) if fmt == "png" else _webp(pixels)


def encode_label_tile(tile: np.ndarray) -> bytes:
    """Encode a (Y, X) label tile (ids < 2**24) as an RGB PNG: R, G, B = bytes 0, 1, 2 of the id.

    Raises :class:`LabelIdRangeError` for a negative id or one >= 2**24. ``tile`` is not
    modified.
    """
    tile = _check_tile(tile)
    if tile.dtype.kind not in "uib":
        raise LabelIdRangeError(f"label tiles hold integer ids, got dtype {tile.dtype}")
    if tile.dtype.kind == "i" and tile.min() < 0:
        raise LabelIdRangeError("label tiles cannot hold negative ids")
    if tile.dtype.itemsize > 2 and tile.max() >= LABEL_ID_LIMIT:
        raise LabelIdRangeError(f"label id {int(tile.max())} does not fit a tile: ids must be below {LABEL_ID_LIMIT}")
    # Little-endian uint32 bytes are (R, G, B, 0) for ids below 2**24: keep the first three.
    packed = np.ascontiguousarray(tile, dtype="<u4").view(np.uint8).reshape(*tile.shape, 4)[..., :3]
    return _png(packed)


def decode_label_tile(png_bytes: bytes) -> np.ndarray:
    """Inverse of :func:`encode_label_tile`: (Y, X) uint32 ids from an RGB or RGBA PNG.

    An RGBA PNG (as a canvas would give back) must be opaque.
    """
    from PIL import Image

    with Image.open(io.BytesIO(png_bytes)) as image:
        if image.mode not in ("RGB", "RGBA"):
            raise ValueError(f"a label tile is an RGB PNG, got mode {image.mode}")
        rgba = np.asarray(image.convert("RGBA"))
    if not (rgba[..., 3] == 255).all():
        raise ValueError("a label tile must be opaque (alpha 255 everywhere)")
    rgb = rgba[..., :3].astype(np.uint32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def _heat_palette() -> np.ndarray:
    """(256, 4) uint8 RGBA: index 0 transparent, 1..255 the scores 0..1 from blue to red."""
    stops = np.array([[49, 54, 149], [255, 255, 191], [215, 48, 39]], np.float64)
    t = np.linspace(0.0, 1.0, 255)
    low = t < 0.5
    f = np.where(low, t * 2, (t - 0.5) * 2)[:, None]
    rgb = np.where(low[:, None], stops[0] + f * (stops[1] - stops[0]), stops[1] + f * (stops[2] - stops[1]))
    palette = np.zeros((256, 4), np.uint8)
    palette[1:, :3] = np.round(rgb).astype(np.uint8)
    palette[1:, 3] = 200
    return palette


_PALETTE = _heat_palette()


def score_lookup(scores, n_labels: int) -> np.ndarray:
    """(n_labels + 1,) uint8 palette index per label id from ``(id, score)`` pairs: 0 for
    background and for ids without a score, 1 + round(254 * score) otherwise (score clipped to
    [0, 1])."""
    lookup = np.zeros(int(n_labels) + 1, np.uint8)
    if scores:
        ids, values = np.array([s[0] for s in scores], np.int64), np.array([s[1] for s in scores], np.float64)
        keep = (ids > 0) & (ids <= n_labels) & np.isfinite(values)
        lookup[ids[keep]] = 1 + np.round(np.clip(values[keep], 0, 1) * 254).astype(np.uint8)
    return lookup


def encode_score_tile(tile: np.ndarray, lookup: np.ndarray) -> bytes:
    """The heat map of a (Y, X) label tile as an RGBA PNG, through ``score_lookup``'s table
    (ids beyond it are drawn transparent)."""
    tile = _check_tile(tile)
    index = np.zeros(tile.shape, np.uint8)
    inside = tile < len(lookup)
    index[inside] = lookup[tile[inside]]
    return _png(_PALETTE[index])
