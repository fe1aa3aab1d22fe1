"""The shared checks and to_dict/from_dict of the core's parameter bundles."""

import json

import numpy as np
import pytest

from segmentation.core._validation import check_bool, check_choice, check_number, check_numbers
from segmentation.core.adapter import AdapterParams, AdapterTrainingParams
from segmentation.core.anisotropy import Anisotropy3DPreprocessor
from segmentation.core.blockwise import BlockwiseParams
from segmentation.core.corrections import RetrainingParams
from segmentation.core.errors import InvalidParameterError
from segmentation.core.linking import LinkingParams
from segmentation.core.params import SegmentationParams
from segmentation.core.restoration import RestorationParams
from segmentation.core.synthetic import NucleiConfig
from segmentation.core.uncertainty import UncertaintyParams


@pytest.mark.parametrize("value, bounds, message", [
    (True, {"low": 0}, "x must be a number >= 0, got True"),
    (float("nan"), {}, "x must be a finite number, got nan"),
    (1.5, {"low": 0, "integer": True}, "x must be a whole number >= 0, got 1.5"),
    (0, {"low": 0, "high": 1, "low_open": True}, r"x must be a number in \(0, 1\], got 0"),
    (1, {"low": 0, "high": 1, "high_open": True}, r"x must be a number in \[0, 1\), got 1"),
    ("3", {}, "x must be a finite number, got '3'"),
    (None, {"low": 0}, "x must be a number >= 0, got None"),
])
def test_it_refuses_a_number_out_of_bounds_in_one_line(value, bounds, message):
    with pytest.raises(InvalidParameterError, match=f"^{message}$"):
        check_number("x", value, **bounds)


def test_it_returns_plain_numbers_and_keeps_python_ints():
    assert type(check_number("x", np.float32(0.5))) is float
    assert type(check_number("x", np.int64(3), integer=True)) is int
    assert check_number("x", 20) == 20 and type(check_number("x", 20)) is int
    assert check_number("x", None, allow_none=True) is None
    assert check_numbers("v", [np.float64(2), 1], lengths=(3, 2), low=0) == (2.0, 1)
    with pytest.raises(InvalidParameterError, match="v must be 3 or 2 numbers"):
        check_numbers("v", "ab", lengths=(3, 2))
    with pytest.raises(InvalidParameterError, match="true or false"):
        check_bool("b", 1)
    with pytest.raises(InvalidParameterError, match="unknown mode 'x'; choose one of a, b"):
        check_choice("mode", "x", ("a", "b"))


BUNDLES = [
    SegmentationParams(voxel_size=(2, 0.5, 0.5), min_size=np.int64(20), diameter=np.float32(12)),
    AdapterParams(rank=2, targets=("upsample.*",)), AdapterTrainingParams(steps=3),
    Anisotropy3DPreprocessor((3.0, 1.0, 1.0)), BlockwiseParams(align=(1, 64, 64)),
    RetrainingParams(training={"steps": 5}, min_holdout_corrections=np.int64(3)),
    LinkingParams(max_distance_z=np.int32(3)), RestorationParams(rl_iterations=10),
    NucleiConfig(diameter_range=(8, 12)), UncertaintyParams(flow_weight=1),
]


@pytest.mark.parametrize("params", BUNDLES, ids=lambda p: type(p).__name__)
def test_it_round_trips_every_bundle_through_json(params):
    data = json.loads(json.dumps(params.to_dict()))  # numpy scalars were stored as plain numbers
    assert type(params).from_dict(data) == params
    with pytest.raises(InvalidParameterError, match="unknown .*: colour"):
        type(params).from_dict({**data, "colour": 1})
    with pytest.raises(InvalidParameterError, match="must be a JSON object"):
        type(params).from_dict([data])
