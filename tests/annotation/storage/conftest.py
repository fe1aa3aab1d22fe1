"""Fixtures for the storage tests: small generated volumes. No Django needed."""

import numpy as np
import pytest

from annotation.storage import VolumeStore


def _nuclei_image(shape, dtype, seed=0):
    """A (Z, Y, X) image of bright blobs on a noisy background, in ``dtype``."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    image = np.full(shape, 100.0, dtype=np.float32)
    for cz, cy, cx in rng.uniform(0, 1, (6, 3)) * np.array(shape):
        image += 900.0 * np.exp(-((z - cz) ** 2 / 4 + (y - cy) ** 2 / 200 + (x - cx) ** 2 / 200))
    image += rng.normal(0, 20, shape)
    if np.dtype(dtype).kind == "f":
        return image.astype(dtype)
    return np.clip(image / (4 if np.dtype(dtype) == np.uint8 else 1), 0, np.iinfo(dtype).max).astype(dtype)


@pytest.fixture
def volume(tmp_path):
    """A 3-plane uint16 volume of 300 x 520 pixels (three levels), voxel size (2, 0.5, 0.5)."""
    image = _nuclei_image((3, 300, 520), np.uint16)
    return VolumeStore.create(tmp_path / "vol.zarr", image, voxel_size=(2.0, 0.5, 0.5), name="demo")


@pytest.fixture
def nuclei_image():
    """``nuclei_image(shape, dtype, seed=0)``: a generated (Z, Y, X) image."""
    return _nuclei_image


@pytest.fixture
def leftovers():
    """``leftovers(directory)``: names a failed write may have left (partial dirs, temp files)."""
    def find(directory):
        return sorted(p.name for p in directory.iterdir() if ".partial-" in p.name or p.name.endswith(".tmp"))
    return find
