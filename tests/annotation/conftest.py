"""Fixtures of the annotation web tests: generated volumes written as TIFF files and imported
into the project of ``tests/conftest.py`` (which also gives the data folder, the user cast and
the API clients). Nothing here mocks the database or the storage.
"""

from functools import lru_cache

import numpy as np
import pytest


@lru_cache(maxsize=None)
def _sample(ndim: int, seed: int):
    from segmentation.core import synthetic

    if ndim == 3:
        sample = synthetic.generate_3d(shape=(8, 300, 300), seed=seed)
    else:
        sample = synthetic.generate_2d(shape=(300, 300), seed=seed)
    image = np.clip(np.round(sample.image), 0, 65535).astype(np.uint16)  # photon counts: no rescaling
    image.flags.writeable = False
    sample.labels.flags.writeable = False
    return image, sample.labels


@pytest.fixture
def sample_3d():
    """(image uint16 (8, 300, 300), labels uint32): a generated stack with its true nuclei."""
    return _sample(3, 7)


@pytest.fixture
def sample_2d():
    """(image uint16 (300, 300), labels uint32): a generated image with its true nuclei."""
    return _sample(2, 7)


def write_tiff(path, array, **kwargs):
    import tifffile

    tifffile.imwrite(path, array, **kwargs)
    return path


@pytest.fixture
def tiff_3d(tmp_path, sample_3d):
    """A (Z, Y, X) uint16 ImageJ TIFF of the generated stack, voxel size (2, 0.5, 0.5) µm."""
    return write_tiff(tmp_path / "stack.tif", sample_3d[0], imagej=True, resolution=(2.0, 2.0),
                      metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})


@pytest.fixture
def volume_3d(project, ivy, tiff_3d):
    """The generated stack imported into the project."""
    from annotation.services import volume_import

    return volume_import(project=project, src_path=tiff_3d, name="stack", user=ivy)


@pytest.fixture
def labels_v1(volume_3d, sample_3d, ivy):
    """Version v1 of the stack: its true labels, with made-up uncertainties."""
    from annotation.models import LabelVersion
    from annotation.services import label_version_create

    labels = sample_3d[1]
    ids = np.unique(labels)[1:]
    return label_version_create(volume=volume_3d, labels=labels, user=ivy, source=LabelVersion.Source.SEGMENTATION,
                                model_version="ezq_nuclei_v1", uncertainty={int(i): float(i) / 1000 for i in ids[::2]})
