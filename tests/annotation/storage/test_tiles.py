"""Tile encoding for browsers: 8-bit intensity tiles and lossless packed label tiles."""

import io

import numpy as np
import pytest
from PIL import Image

from annotation.storage import LabelIdRangeError, decode_label_tile, encode_image_tile, encode_label_tile
from annotation.storage.tiles import LABEL_ID_LIMIT, to_display


def test_it_round_trips_label_ids_up_to_2_to_the_24_minus_1():
    special = [0, 1, 255, 256, 65535, 65536, 2 ** 23, LABEL_ID_LIMIT - 1]
    rng = np.random.default_rng(0)
    tile = rng.integers(0, LABEL_ID_LIMIT, (256, 256), dtype=np.uint32)
    tile[0, :len(special)] = special
    before = tile.copy()
    png = encode_label_tile(tile)
    np.testing.assert_array_equal(tile, before)
    decoded = decode_label_tile(png)
    assert decoded.dtype == np.uint32
    np.testing.assert_array_equal(decoded, tile)


def test_it_packs_ids_little_endian_into_opaque_rgb_without_colour_chunks():
    png = encode_label_tile(np.array([[0x123456, 7]], dtype=np.uint32))
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB"
        rgba = np.asarray(image.convert("RGBA"))  # what a canvas's getImageData gives
    assert rgba[0, 0].tolist() == [0x56, 0x34, 0x12, 255] and rgba[0, 1].tolist() == [7, 0, 0, 255]
    assert not any(chunk in png for chunk in (b"gAMA", b"iCCP", b"sRGB", b"cHRM"))
    canvas = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(canvas, format="PNG")
    np.testing.assert_array_equal(decode_label_tile(canvas.getvalue()), [[0x123456, 7]])


@pytest.mark.parametrize("tile", [np.array([[LABEL_ID_LIMIT]], np.uint32), np.array([[2 ** 32 - 1]], np.uint32),
                                  np.array([[-1]], np.int32), np.array([[1.0]])])
def test_it_refuses_ids_a_tile_cannot_carry(tile):
    with pytest.raises(LabelIdRangeError):
        encode_label_tile(tile)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_it_maps_the_contrast_window_to_8_bits(dtype):
    tile = np.array([[0, 100, 150, 200, 250]], dtype=dtype)
    np.testing.assert_array_equal(to_display(tile, 100, 200), [[0, 0, 128, 255, 255]])
    png = encode_image_tile(tile, 100, 200)
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "L" and image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), [[0, 0, 128, 255, 255]])


def test_it_handles_nan_and_an_empty_window():
    np.testing.assert_array_equal(to_display(np.array([[np.nan, 5.0]]), 0, 10), [[0, 128]])
    np.testing.assert_array_equal(to_display(np.array([[4, 5, 6]], np.uint16), 5, 5), [[0, 0, 255]])


def test_it_encodes_webp_tiles_of_the_same_size():
    tile = np.random.default_rng(0).integers(0, 4000, (256, 200), dtype=np.uint16)
    webp = encode_image_tile(tile, 0, 4000, fmt="webp")
    with Image.open(io.BytesIO(webp)) as image:
        assert image.format == "WEBP" and image.size == (200, 256)
    with pytest.raises(ValueError):
        encode_image_tile(tile, 0, 1, fmt="jpeg")
    with pytest.raises(ValueError):
        encode_image_tile(tile[np.newaxis], 0, 1)
