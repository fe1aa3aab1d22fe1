"""The backend registry (segmentation.core.backends): adding a backend is adding one class."""

import numpy as np
import pytest

from segmentation.core import SegmentationParams
from segmentation.core.backends import BACKENDS, Backend, BackendOutput, SliceBackend, register
from segmentation.core.errors import InvalidParameterError
from segmentation.core.params import backend_catalogue


def test_it_registers_the_three_shipped_backends_by_name():
    assert set(BACKENDS) == {"slice", "hybrid2d3d", "true3d"}
    assert all(cls.name == name and issubclass(cls, Backend) for name, cls in BACKENDS.items())


@pytest.mark.parametrize("name", ["", "slice"])
def test_it_refuses_a_backend_whose_name_is_empty_or_taken(name):
    before = dict(BACKENDS)
    with pytest.raises(ValueError, match="empty or taken"):
        register(type("Nameless", (Backend,), {"name": name}))
    assert BACKENDS == before and BACKENDS["slice"] is SliceBackend  # the registry is left as it was


def test_it_offers_a_new_backend_to_params_and_pages_once_registered(monkeypatch):
    monkeypatch.setattr("segmentation.core.backends.BACKENDS", dict(BACKENDS))  # undone after the test
    from segmentation.core import backends

    with pytest.raises(InvalidParameterError, match="unknown 3D backend 'blank'"):
        SegmentationParams(do_3d=True, use_3d_backend="blank")

    @register
    class BlankBackend(Backend):
        name = "blank"
        summary = "labels nothing"

        def segment(self, volume, runner, params, progress):
            return BackendOutput(np.zeros(volume.shape, np.uint32), np.zeros((3, *volume.shape), np.float32),
                                 np.zeros(volume.shape, np.float32))

    assert backends.BACKENDS["blank"] is BlankBackend
    params = SegmentationParams(do_3d=True, use_3d_backend="blank")
    assert isinstance(BlankBackend.from_params(params), BlankBackend)
    assert {"name": "blank", "summary": "labels nothing", "default": False, "options": []} in backend_catalogue()
