"""The runner protocol: backends see the network only through ``eval_2d`` and ``eval_3d``."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation.core.backends import BACKENDS
from segmentation.core.modelzoo import load_model
from segmentation.core.params import SegmentationParams
from segmentation.core.runner import CellposeRunner, ModelRunner


class ThresholdRunner:
    """A ModelRunner with no network: nuclei are the connected regions above 0.5."""

    diameter = 10.0

    def __init__(self):
        self.calls = []

    def eval_2d(self, image, diameter=None):
        self.calls.append(("2d", image.shape, diameter))
        labels, _ = ndi.label(image > 0.5)
        return labels.astype(np.uint32), np.zeros((2, *image.shape), np.float32), image.astype(np.float32)

    def eval_3d(self, volume, anisotropy):
        self.calls.append(("3d", volume.shape, anisotropy))
        labels, _ = ndi.label(volume > 0.5)
        return labels.astype(np.uint32), np.zeros((3, *volume.shape), np.float32), volume.astype(np.float32)


def _two_columns():
    """(4, 12, 12): two nuclei, each a 3 x 3 column through all four planes."""
    volume = np.zeros((4, 12, 12), np.float32)
    volume[:, 2:5, 2:5] = 1.0
    volume[:, 7:10, 7:10] = 1.0
    return volume


def test_it_counts_a_stand_in_and_the_cellpose_runner_as_model_runners():
    assert isinstance(ThresholdRunner(), ModelRunner)
    model = load_model(None)
    assert isinstance(CellposeRunner(model, SegmentationParams(), diameter=model.diam_mean), ModelRunner)
    assert not isinstance(object(), ModelRunner)


@pytest.mark.parametrize("backend, expected_ids", [("slice", 8), ("hybrid2d3d", 2), ("true3d", 2)])
def test_it_runs_every_backend_through_the_protocol_alone(backend, expected_ids):
    volume = _two_columns()
    before = volume.copy()
    runner = ThresholdRunner()
    params = SegmentationParams(do_3d=True, use_3d_backend=backend, diameter=10)
    out = BACKENDS[backend].from_params(params).segment(volume, runner, params, lambda f, m: None)
    assert out.labels.shape == volume.shape and out.labels.dtype == np.uint32
    assert len(np.unique(out.labels[out.labels > 0])) == expected_ids
    assert np.array_equal(out.labels > 0, volume > 0.5)
    assert np.array_equal(volume, before)  # the volume is never modified
    kinds = {kind for kind, _, _ in runner.calls}
    assert kinds == ({"3d"} if backend == "true3d" else {"2d"})


def test_it_follows_the_flows_of_a_coarse_stack_on_planes_one_pixel_apart():
    from segmentation.core.engine import normalize_intensity, plane_intensity_ranges
    from segmentation.core.metrics import average_precision
    from segmentation.core.synthetic import generate_3d

    stack = generate_3d(shape=(8, 64, 64), seed=5, voxel_size=(1.5, 0.5, 0.5))
    volume = normalize_intensity(stack.image, plane_intensity_ranges(stack.image))
    model = load_model("ezq_nuclei_v2")
    results = {}
    for isotropic in (True, False):
        params = SegmentationParams(do_3d=True, use_3d_backend="true3d", isotropic_masks=isotropic)
        labels, flows, cellprob = CellposeRunner(model, params, diameter=16.0).eval_3d(volume, anisotropy=3.0)
        assert labels.shape == volume.shape and labels.dtype == np.uint32
        assert flows.shape == (3, *volume.shape) and cellprob.shape == volume.shape
        assert np.isfinite(flows).all() and np.isfinite(cellprob).all()
        results[isotropic] = labels
    # Different masks (another grid), each a segmentation of the stack's nuclei.
    assert not np.array_equal(results[True], results[False])
    for labels in results.values():
        assert average_precision([stack.labels], [labels], thresholds=(0.5,)).ap[0] > 0.3
    with pytest.raises(Exception, match="isotropic_masks"):
        SegmentationParams(isotropic_masks="yes")
