"""Each 3D backend declares its options in the registry (Backend.options): fields of
SegmentationParams that from_params reads, listed with their defaults by backend_catalogue."""

import dataclasses

import pytest

from segmentation.core import SegmentationParams
from segmentation.core.backends import BACKENDS, Backend
from segmentation.core.params import DEFAULT_3D_BACKEND, backend_catalogue


def test_it_lists_every_backend_with_its_options_the_default_first():
    catalogue = backend_catalogue()
    assert [b["name"] for b in catalogue][0] == DEFAULT_3D_BACKEND and {b["name"] for b in catalogue} == set(BACKENDS)
    fields = {f.name for f in dataclasses.fields(SegmentationParams)}
    for backend in catalogue:
        assert backend["summary"].startswith(backend["name"])
        for option in backend["options"]:
            assert option["name"] in fields and option["default"] == getattr(SegmentationParams(), option["name"])
    options = {b["name"]: [o["name"] for o in b["options"]] for b in catalogue}
    assert options == {"true3d": ["flow3d_smooth"], "slice": [],
                       "hybrid2d3d": ["min_overlap_ratio", "max_distance_z", "overlap_measure", "split_dip",
                                      "max_z_elongation"]}


def test_it_builds_a_backend_from_the_options_it_declares():
    params = SegmentationParams(do_3d=True, use_3d_backend="hybrid2d3d", min_overlap_ratio=0.5, split_dip=0.0)
    linking = BACKENDS["hybrid2d3d"].from_params(params).linking
    assert (linking.min_overlap_ratio, linking.split_dip, linking.max_distance_z) == (0.5, 0.0, 2)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_it_builds_each_registered_backend_from_params(name):
    backend = BACKENDS[name].from_params(SegmentationParams(do_3d=True, use_3d_backend=name))
    assert isinstance(backend, Backend) and backend.name == name
