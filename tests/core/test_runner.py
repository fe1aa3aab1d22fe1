"""The runner protocol: backends see the network only through ``eval_2d`` and ``eval_3d``."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation.core.backends import BACKENDS
from segmentation.core.errors import InvalidParameterError
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


@pytest.mark.parametrize("diameter", [17.0, 15.0])  # the network's own scale (no resize), and resized
def test_it_gives_a_window_of_a_larger_plane_the_whole_plane_s_flows(diameter):
    from segmentation.core.engine import normalize_intensity
    from segmentation.core.runner import PlaneView, tile_context
    from segmentation.core.synthetic import generate_3d

    plane = normalize_intensity(generate_3d((8, 300, 260), seed=3, diameter=16).image[4])
    model = load_model(None)
    params = SegmentationParams(diameter=diameter)
    whole_labels, whole_flows, whole_prob = CellposeRunner(model, params, diameter).eval_2d(plane)
    window = ((40, 170), (110, 260))  # whole-plane pixels; more than one 224-pixel tile around it
    (y0, y1), (x0, x1) = tile_context(plane.shape, window, diam_mean=model.diam_mean, diameter=diameter)
    assert y0 < window[0][0] and y1 > window[0][1] and x0 < window[1][0] and x1 == window[1][1]  # (the plane's edge)
    given = plane[y0:y1, x0:x1]
    view = PlaneView(plane_shape=plane.shape, origin=(y0, x0),
                     window=((window[0][0] - y0, window[0][1] - y0), (window[1][0] - x0, window[1][1] - x0)))
    labels, flows, prob = CellposeRunner(model, params, diameter, view=view).eval_2d(given)
    assert labels.shape == prob.shape == given.shape and flows.shape == (2, *given.shape)
    inner = (slice(*view.window[0]), slice(*view.window[1]))
    region = (slice(*window[0]), slice(*window[1]))
    # The whole plane's flows and probabilities (to float rounding), and nothing outside the window.
    assert np.abs(flows[(slice(None), *inner)] - whole_flows[(slice(None), *region)]).max() < 1e-3
    assert np.abs(prob[inner] - whole_prob[region]).max() < 1e-3
    outside = np.ones(given.shape, bool)
    outside[inner] = False
    assert not labels[outside].any() and not flows[:, outside].any()
    # Every whole-plane nucleus the window's edge does not cut is the same mask.
    mine, theirs = labels[inner], whole_labels[region]
    edge = np.unique(np.concatenate([theirs[0], theirs[-1], theirs[:, 0], theirs[:, -1]]))
    kept = [k for k in np.unique(theirs) if k and k not in edge]
    assert len(kept) >= 10
    for k in kept:
        ids = np.unique(mine[theirs == k])
        assert len(ids) == 1 and ids[0] and np.array_equal(mine == ids[0], theirs == k)
    # The window run alone (its own tiles) does not reproduce the whole plane: the network is
    # not shift-invariant, which is what the view is for.
    _, alone_flows, _ = CellposeRunner(model, params, diameter).eval_2d(plane[region])
    assert np.abs(alone_flows - whole_flows[(slice(None), *region)]).max() > 1e-2


def test_it_refuses_a_plane_that_does_not_hold_the_tiles_around_its_window():
    from segmentation.core.runner import PlaneView

    model = load_model(None)
    view = PlaneView(plane_shape=(300, 300), origin=(100, 100), window=((10, 50), (10, 50)))
    with pytest.raises(ValueError, match="tile_context"):
        runner = CellposeRunner(model, SegmentationParams(diameter=16.0), 16.0, view=view)
        runner.eval_2d(np.zeros((60, 60), np.float32))
    with pytest.raises(ValueError, match="does not lie"):
        PlaneView(plane_shape=(100, 100), origin=(90, 0), window=((0, 20), (0, 20)))


def test_the_engine_refuses_a_view_without_the_diameter():
    from segmentation.core.engine import SegmentationEngine
    from segmentation.core.errors import InvalidParameterError
    from segmentation.core.runner import PlaneView

    view = PlaneView(plane_shape=(64, 64), origin=(0, 0), window=((0, 32), (0, 32)))
    with pytest.raises(InvalidParameterError, match="needs the diameter"):
        SegmentationEngine().segment(np.zeros((64, 64), np.float32), SegmentationParams(), view=view)


def _blurred_nucleus():
    """(14, 12, 12): a nucleus bright on planes 4-9, its light blurred onto planes 2-3 and 10-11,
    and a mask (a stand-in network's) that calls all of planes 1-12 nucleus."""
    volume = np.full((14, 12, 12), 0.1, np.float32)
    volume[4:10, 3:9, 3:9] = 1.0
    volume[[2, 3, 10, 11], 3:9, 3:9] = 0.3  # 0.2 above the background: 22 % of the peak's 0.9
    volume[[1, 12], 3:9, 3:9] = 0.12
    labels = np.zeros(volume.shape, np.uint32)
    labels[1:13, 3:9, 3:9] = 1
    return volume, labels


def test_z_trim_drops_a_nucleus_end_planes_of_blurred_light_and_keeps_its_bright_run():
    from segmentation.core.backends import trim_z_blur

    volume, labels = _blurred_nucleus()
    before = labels.copy()
    trimmed = trim_z_blur(labels, volume, 0.5)
    assert np.array_equal(labels, before)  # a new array
    assert [z for z in range(14) if trimmed[z].any()] == list(range(4, 10))
    assert np.array_equal(trimmed[4:10], labels[4:10])
    # At 0.2 the blurred planes stay (0.2 / 0.9 above the background) and the faint ends go.
    assert [z for z in range(14) if trim_z_blur(labels, volume, 0.2)[z].any()] == list(range(2, 12))
    # A plane the nucleus skips does not end its run; a second nucleus is trimmed on its own.
    labels[7] = 0
    labels[5:9, 0:2, 0:2] = 2
    volume[5:9, 0:2, 0:2] = 0.05  # dimmer than the background: kept whole
    trimmed = trim_z_blur(labels, volume, 0.5)
    assert [z for z in range(14) if (trimmed[z] == 1).any()] == [4, 5, 6, 8, 9]
    assert np.array_equal(trimmed == 2, labels == 2)
    assert not trim_z_blur(np.zeros_like(labels), volume, 0.5).any()


def test_the_true3d_backend_trims_z_blur_when_z_trim_is_set():
    volume, _ = _blurred_nucleus()

    class MaskRunner(ThresholdRunner):
        def eval_3d(self, volume, anisotropy):  # the blurred light called nucleus, as a network does
            labels, _ = ndi.label(volume > 0.11)
            return labels.astype(np.uint32), np.zeros((3, *volume.shape), np.float32), volume

    planes = {}
    for z_trim in (0.0, 0.5):
        params = SegmentationParams(do_3d=True, use_3d_backend="true3d", diameter=10, z_trim=z_trim)
        out = BACKENDS["true3d"].from_params(params).segment(volume, MaskRunner(), params, lambda f, m: None)
        planes[z_trim] = [z for z in range(14) if out.labels[z].any()]
    assert planes == {0.0: list(range(1, 13)), 0.5: list(range(4, 10))}
    with pytest.raises(InvalidParameterError, match="z_trim"):
        SegmentationParams(z_trim=1.0)
