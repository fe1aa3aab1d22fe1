"""The 3D backends' options are declared once (backend_options.BACKEND_OPTIONS): SegmentationParams'
fields take their defaults and rules from there, the linking parameters too, each registered
backend lists those that name it, and backend_catalogue gives them to the viewer's form."""

import dataclasses
import math
import re

import pytest

from segmentation.core import SegmentationParams
from segmentation.core.backend_options import BACKEND_OPTIONS, OPTION_KINDS, BackendOption
from segmentation.core.backends import BACKENDS, Backend, register
from segmentation.core.errors import InvalidParameterError
from segmentation.core.linking import LinkingParams
from segmentation.core.params import DEFAULT_3D_BACKEND, backend_catalogue


def test_it_lists_every_backend_with_its_options_the_default_first():
    catalogue = backend_catalogue()
    assert [b["name"] for b in catalogue][0] == DEFAULT_3D_BACKEND and {b["name"] for b in catalogue} == set(BACKENDS)
    for backend in catalogue:
        assert backend["summary"].startswith(backend["name"])
        for option in backend["options"]:
            assert option["default"] == getattr(SegmentationParams(), option["name"]) and option["kind"] in OPTION_KINDS
    options = {b["name"]: [o["name"] for o in b["options"]] for b in catalogue}
    assert options == {"true3d": ["flow3d_smooth", "isotropic_masks", "z_trim"], "slice": [],
                       "hybrid2d3d": ["min_overlap_ratio", "max_distance_z", "overlap_measure", "split_dip",
                                      "max_z_elongation"]}
    isotropic = next(o for b in catalogue for o in b["options"] if o["name"] == "isotropic_masks")
    assert (isotropic["kind"], isotropic["default"]) == ("bool", True)


def test_each_option_is_a_params_field_with_its_default_read_by_registered_backends():
    fields = {f.name: f for f in dataclasses.fields(SegmentationParams)}
    for name, option in BACKEND_OPTIONS.items():
        assert name == option.name and fields[name].default == option.default, name
        assert set(option.backends) <= set(BACKENDS), name
        assert all(option in BACKENDS[backend].options for backend in option.backends)
    linking = {f.name: f.default for f in dataclasses.fields(LinkingParams)}
    assert linking == {name: BACKEND_OPTIONS[name].default for name in linking}
    assert set(linking) == {o.name for o in BACKENDS["hybrid2d3d"].options}


def _outside(option: BackendOption) -> list:
    """Values just past the option's bounds (or of the wrong kind): what its rule refuses."""
    if option.kind == "bool":
        return [1, "yes", None]
    if option.kind == "choice":
        return ["nearest", 0]
    bad = ["1", True, math.nan]
    if option.low is not None:
        bad.append(option.low if option.low_open else option.low - (1 if option.kind == "integer" else 1e-6))
    if option.high is not None:
        bad.append(option.high if option.high_open else option.high + 1e-6)
    if option.kind == "integer":
        bad.append(option.default + 0.5)
    return [value for value in bad if value != option.off]


@pytest.mark.parametrize("name", sorted(BACKEND_OPTIONS))
def test_one_rule_per_option_in_the_params_and_the_linking_parameters(name):
    option = BACKEND_OPTIONS[name]
    for value in _outside(option):
        with pytest.raises(InvalidParameterError, match=f"{name}.*{re.escape(option.rule)}"):  # as the API says it
            SegmentationParams(**{name: value})
        if name in {f.name for f in dataclasses.fields(LinkingParams)}:
            with pytest.raises(InvalidParameterError, match=name):
                LinkingParams(**{name: value})
    assert getattr(SegmentationParams(**{name: option.default}), name) == option.default
    if option.off is not None:  # the value that turns the rule off passes although it is out of bounds
        assert getattr(SegmentationParams(**{name: option.off}), name) == option.off


def test_the_form_bounds_are_the_rules():
    by_name = {o["name"]: o for b in backend_catalogue() for o in b["options"]}
    assert (by_name["max_z_elongation"]["low"], by_name["max_z_elongation"]["high"]) == (0, 100)  # 0 = off
    assert (by_name["min_overlap_ratio"]["low"], by_name["min_overlap_ratio"]["high"]) == (0, 1)
    assert by_name["overlap_measure"]["choices"] == ["iou", "intersection_over_smaller"]


def test_it_refuses_an_option_its_own_rule_refuses_or_no_backend_reads():
    with pytest.raises(InvalidParameterError, match="must be a number in \\[0, 1\\]"):
        BackendOption("ratio", 2.0, "Ratio", "a ratio", ("slice",), low=0, high=1)
    with pytest.raises(ValueError, match="no backend reads it"):
        BackendOption("ratio", 0.5, "Ratio", "a ratio", ())
    with pytest.raises(ValueError, match="kind 'text'"):
        BackendOption("word", "a", "Word", "a word", ("slice",), kind="text")


def test_a_backend_declares_no_options_of_its_own(monkeypatch):
    monkeypatch.setattr("segmentation.core.backends.BACKENDS", dict(BACKENDS))  # undone after the test

    with pytest.raises(ValueError, match="list them in backend_options.BACKEND_OPTIONS"):
        @register
        class Opinionated(Backend):
            name = "opinionated"
            options = (BACKEND_OPTIONS["split_dip"],)


def test_it_builds_a_backend_from_the_options_it_declares():
    params = SegmentationParams(do_3d=True, use_3d_backend="hybrid2d3d", min_overlap_ratio=0.5, split_dip=0.0)
    linking = BACKENDS["hybrid2d3d"].from_params(params).linking
    assert (linking.min_overlap_ratio, linking.split_dip, linking.max_distance_z) == (0.5, 0.0, 2)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_it_builds_each_registered_backend_from_params(name):
    backend = BACKENDS[name].from_params(SegmentationParams(do_3d=True, use_3d_backend=name))
    assert isinstance(backend, Backend) and backend.name == name
