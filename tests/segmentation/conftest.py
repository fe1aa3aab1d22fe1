"""Fixtures of the segmentation job tests: small generated volumes imported through annotation's
services into the project of ``tests/conftest.py`` (which also gives the data folder, the user
cast and the API clients). Nothing mocks the database, storage or model.
"""

from functools import lru_cache

import numpy as np
import pytest

# Small and quick with the shipped default model; a given diameter skips its estimation.
FAST_PARAMS = {"diameter": 15.0}


@lru_cache(maxsize=None)
def _image(shape: tuple[int, ...]) -> np.ndarray:
    from segmentation.core import synthetic

    sample = synthetic.generate_3d(shape=shape, seed=3) if len(shape) == 3 else synthetic.generate_2d(shape=shape,
                                                                                                     seed=3)
    return np.clip(np.round(sample.image), 0, 65535).astype(np.uint16)  # photon counts: no rescaling


def import_volume(tmp_path, project, user, shape, name="cells"):
    import tifffile

    from annotation.services import volume_import

    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, _image(shape))
    return volume_import(project=project, src_path=path, name=name, user=user)


@pytest.fixture
def volume_2d(project, ivy, tmp_path):
    """A generated 96x96 image."""
    return import_volume(tmp_path, project, ivy, (96, 96), name="cells2d")


@pytest.fixture
def volume_3d(project, ivy, tmp_path):
    """A generated 16x128x128 stack: enough slices that a job runs for a few seconds."""
    return import_volume(tmp_path, project, ivy, (16, 128, 128), name="cells3d")


def run_queued_jobs() -> None:
    """What a worker does: django-tasks-db's worker loop, until no task is left."""
    from segmentation.worker import make_worker

    make_worker(batch=True, interval=0).run()
