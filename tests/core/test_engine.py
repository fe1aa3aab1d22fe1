"""The engine end to end with the shipped default model on generated images."""

import json

import numpy as np
import pytest

from segmentation.core.engine import (
    MAX_PLANE_GAIN,
    Cellpose3RestorationEngine,
    SegmentationEngine,
    normalize_intensity,
    plane_intensity_ranges,
    validate_image,
)
from segmentation.core.errors import InvalidInputError, InvalidParameterError, ModelNotAvailableError
from segmentation.core.metrics import average_precision
from segmentation.core.modelzoo import DEFAULT_MODEL, load_model
from segmentation.core.params import SegmentationParams
from segmentation.core.restoration import restore
from segmentation.core.synthetic import generate_2d, generate_3d


@pytest.fixture(scope="module")
def engine():
    return SegmentationEngine()


@pytest.fixture(scope="module")
def image_2d():
    return generate_2d(shape=(192, 192), seed=101, diameter=18, photons=400, blur_sigma=1.0)


@pytest.fixture(scope="module")
def volume():
    return generate_3d(shape=(10, 96, 96), seed=7, voxel_size=(1.5, 0.5, 0.5), diameter=18, photons=500)


def _ap50(gt, pred):
    return average_precision(gt, pred, thresholds=(0.5,)).ap[0]


def test_2d_segmentation_finds_the_nuclei(engine, image_2d):
    masks, info = engine.segment_cellpose(image_2d.image, diameter=18)
    assert masks.shape == image_2d.image.shape and masks.dtype == np.uint32
    assert info["nucleus_count"] == len(np.unique(masks)) - 1
    assert info["backend"] == "2d"
    assert info["model"]["name"] == DEFAULT_MODEL and len(info["model"]["sha256"]) == 64
    assert _ap50(image_2d.labels, masks) > 0.7
    json.dumps(info)  # the record is JSON as it is


def test_diameter_is_estimated_from_the_image(engine):
    for diameter in (12, 30):
        sample = generate_2d(shape=(192, 192), seed=diameter, diameter=diameter, photons=500, blur_sigma=1.0)
        masks, info = engine.segment_cellpose(sample.image)
        assert info["diameter_estimated"] is True
        # Median equivalent diameters of generated nuclei sit a little below the drawn median.
        assert 0.6 * diameter < info["diameter"] < 1.3 * diameter
        assert _ap50(sample.labels, masks) > 0.6


def test_the_input_is_not_modified(engine, image_2d):
    before = image_2d.image.copy()
    engine.segment_cellpose(image_2d.image, diameter=18, restoration_mode="auto")
    np.testing.assert_array_equal(image_2d.image, before)


def test_slice_backend_gives_each_slice_its_own_ids(engine, volume):
    masks, info = engine.segment_cellpose(volume.image, diameter=18, do_3d=True, use_3d_backend="slice")
    assert masks.shape == volume.image.shape and info["backend"] == "slice"
    ids_per_slice = [set(np.unique(m)) - {0} for m in masks]
    for a in range(len(ids_per_slice)):
        for b in range(a + 1, len(ids_per_slice)):
            assert not ids_per_slice[a] & ids_per_slice[b]


def test_hybrid_backend_links_slices_into_3d_nuclei(engine, volume):
    sliced, _ = engine.segment_cellpose(volume.image, diameter=18, do_3d=True, use_3d_backend="slice")
    linked, info = engine.segment_cellpose(volume.image, diameter=18, do_3d=True, use_3d_backend="hybrid2d3d",
                                           voxel_size=volume.voxel_size)
    assert info["backend"] == "hybrid2d3d"
    # Linking only relabels: the same voxels are foreground, in fewer, taller objects.
    np.testing.assert_array_equal(sliced > 0, linked > 0)
    assert info["nucleus_count"] < len(np.unique(sliced)) - 1
    assert _ap50(volume.labels, linked) > 0.5


def test_true3d_backend_segments_the_volume(engine, volume):
    masks, info = engine.segment_cellpose(volume.image, diameter=18, do_3d=True, use_3d_backend="true3d",
                                          voxel_size=volume.voxel_size)
    assert info["backend"] == "true3d" and masks.shape == volume.image.shape
    assert _ap50(volume.labels, masks) > 0.4
    # A nucleus spans several slices in one id.
    spans = [np.ptp(np.nonzero(masks == i)[0]) for i in np.unique(masks)[1:]]
    assert np.median(spans) >= 2


def test_progress_rises_to_one_and_can_cancel(engine, volume):
    seen = []
    engine.segment_cellpose(volume.image, diameter=18, do_3d=True, use_3d_backend="hybrid2d3d",
                            progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(isinstance(m, str) and m for _, m in seen)

    class Cancelled(Exception):
        pass

    def cancel_at_third_slice(fraction, message):
        if message.startswith("slice 3/"):
            raise Cancelled()

    with pytest.raises(Cancelled):
        engine.segment_cellpose(volume.image, diameter=18, do_3d=True, progress=cancel_at_third_slice)


def test_restoration_is_reported(engine):
    noisy = generate_2d(shape=(128, 128), seed=3, diameter=16, photons=6)
    _, info = engine.segment_cellpose(noisy.image, diameter=16, restoration_mode="auto")
    assert info["restoration_requested"] == "auto"
    assert info["restoration_mode"] in ("none", "denoise", "deblur")
    assert {"snr", "blur_score"} <= set(info["restoration_metrics"])
    _, info = engine.segment_cellpose(noisy.image, diameter=16)
    assert "restoration_metrics" not in info


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4, 16, 16)), r"2D \(Y, X\) or 3D"),
    (np.zeros(16), r"2D \(Y, X\) or 3D"),
    (np.zeros((0, 16)), "empty"),
    (np.full((16, 16), np.nan), "NaN"),
    (np.array([["a"] * 16] * 16), "real numbers"),
    (np.zeros((4, 4)), "at least 8x8"),
])
def test_bad_images_are_refused(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        validate_image(bad)


@pytest.mark.parametrize("kwargs", [
    {"use_3d_backend": "magic"}, {"restoration_mode": "sharpen"}, {"diameter": -3},
    {"diameter": float("nan")}, {"voxel_size": (1, 0, 1)}, {"voxel_size": (1, 1, 1, 1)},
    {"flow_threshold": -1}, {"min_size": 2.5}, {"max_distance_z": 0}, {"min_overlap_ratio": 0},
    {"not_a_parameter": 1}, {"flow3d_smooth": -1}, {"flow3d_smooth": True}, {"normalize_planes": "yes"},
])
def test_bad_parameters_are_refused(engine, image_2d, kwargs):
    with pytest.raises(InvalidParameterError):
        engine.segment_cellpose(image_2d.image, **kwargs)


def test_voxel_size_must_match_the_image(engine, image_2d):
    with pytest.raises(InvalidParameterError, match="voxel_size has 3 values for a 2D image"):
        engine.segment_cellpose(image_2d.image, voxel_size=(2, 0.5, 0.5))


def test_params_round_trip_through_json():
    params = SegmentationParams(model_name="m", diameter=20.0, do_3d=True, use_3d_backend="true3d",
                                restoration_mode="auto", voxel_size=(2, 0.5, 0.5))
    again = SegmentationParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params and again.anisotropy == 4.0
    with pytest.raises(InvalidParameterError, match="unknown segmentation parameters: colour"):
        SegmentationParams.from_dict({"colour": "red"})


def test_unknown_and_offline_models_fail_clearly(engine, image_2d, monkeypatch):
    with pytest.raises(ModelNotAvailableError, match="unknown model 'nope'"):
        engine.segment_cellpose(image_2d.image, model_name="nope")
    with pytest.raises(ModelNotAvailableError, match="model file not found"):
        engine.segment_cellpose(image_2d.image, model_name="/no/such/model.pt")
    monkeypatch.setenv("EZQUANT_OFFLINE", "1")
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", "/nonexistent")
    with pytest.raises(ModelNotAvailableError, match=f"{DEFAULT_MODEL}.*CELLPOSE_LOCAL_MODELS_PATH"):
        engine.segment_cellpose(image_2d.image, model_name="nuclei")


def test_a_corrupt_model_file_is_refused(tmp_path, engine, image_2d):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotAvailableError, match="cannot read model file broken.pt"):
        engine.segment_cellpose(image_2d.image, model_name=str(bad))


def test_a_cellpose_model_file_loads(tmp_path, image_2d):
    from cellpose.resnet_torch import CPnet

    # A standard-width CPnet saved the way cellpose.train saves it (random weights: this test
    # is about the file format, not the masks).
    path_pt = tmp_path / "cellpose_style_model.pth"
    CPnet([2, 32, 64, 128, 256], 3, sz=3, diam_mean=30.0).save_model(str(path_pt))
    loaded = load_model(str(path_pt))
    assert loaded.kind == "file" and loaded.diam_mean == 30.0 and len(loaded.sha256) == 64
    masks, info = SegmentationEngine().segment_cellpose(image_2d.image, model_name=str(path_pt), diameter=30)
    assert masks.shape == image_2d.image.shape and info["model"]["kind"] == "file"


def test_result_ranks_its_nuclei_by_uncertainty(engine, image_2d):
    result = engine.segment(image_2d.image, SegmentationParams(diameter=18))
    table = result.uncertainty()
    ids = np.unique(result.labels)[1:]
    np.testing.assert_array_equal(table.ids, ids)
    assert np.all((table.score >= 0) & (table.score <= 1))
    ranked = table.ranked(3)
    assert len(ranked) == 3 and ranked[0][1] >= ranked[-1][1]


def _largest_section_median(labels):
    n = int(labels.max())
    areas = np.stack([np.bincount(plane.ravel(), minlength=n + 1) for plane in labels]).max(axis=0)[1:]
    return float(np.median(2 * np.sqrt(areas[areas > 0] / np.pi)))


def _median_section(labels):
    sizes = np.concatenate([np.bincount(plane.ravel())[1:] for plane in labels])
    return float(np.median(2 * np.sqrt(sizes[sizes > 0] / np.pi)))


def test_the_3d_diameter_comes_from_whole_nuclei_not_the_median_section(engine):
    sample = generate_3d(shape=(24, 128, 128), seed=11, voxel_size=(1.0, 0.5, 0.5), diameter=20, photons=500,
                         blur_sigma=1.0)
    params = SegmentationParams(do_3d=True, voxel_size=sample.voxel_size)
    diameter, info = engine.estimate_diameter(sample.image, params)
    assert info["method"] == "largest_section_3d" and info["passes"][-1]["objects"] > 0
    truth, median_section = _largest_section_median(sample.labels), _median_section(sample.labels)
    assert median_section < 0.85 * truth  # why the median section is the wrong measure
    assert abs(diameter - truth) < abs(diameter - median_section)
    assert 0.8 * truth < diameter < 1.25 * truth
    _, info_2d = engine.estimate_diameter(sample.image[12], SegmentationParams())
    assert info_2d["method"] == "median_section"


def test_a_stack_gets_the_default_3d_backend_restoration_and_its_voxel_size():
    from segmentation.core.params import DEFAULT_3D_BACKEND, DEFAULT_3D_RESTORATION, params_for_stack

    assert DEFAULT_3D_RESTORATION == "auto"
    assert params_for_stack({}, ndim=3, voxel_size=(2.0, 0.5, 0.5)) == {
        "do_3d": True, "use_3d_backend": DEFAULT_3D_BACKEND, "restoration_mode": "auto", "voxel_size": [2.0, 0.5, 0.5]}
    assert params_for_stack({"do_3d": False}, ndim=3, voxel_size=None) == {
        "do_3d": False, "use_3d_backend": "slice", "restoration_mode": "auto"}
    kept = params_for_stack({"use_3d_backend": "hybrid2d3d", "voxel_size": [1, 1, 1], "restoration_mode": "none"},
                            ndim=3, voxel_size=(2, 1, 1))
    assert kept == {"do_3d": True, "use_3d_backend": "hybrid2d3d", "voxel_size": [1, 1, 1], "restoration_mode": "none"}
    assert params_for_stack({}, ndim=2, voxel_size=(1.0, 0.5, 0.5)) == {"voxel_size": [0.5, 0.5]}
    SegmentationParams.from_dict(params_for_stack({}, ndim=3, voxel_size=(2.0, 0.5, 0.5)))


def test_each_plane_of_a_stack_is_scaled_by_its_own_range_within_a_bound():
    rng = np.random.default_rng(3)
    bright = rng.poisson(50.0, (64, 64)).astype(np.float64)
    bright[20:40, 20:40] += 1000.0
    # Signal falling with depth: the same plane at 100 %, 40 % and 30 %, and an empty plane.
    stack = np.stack([bright, 0.4 * bright, 0.3 * bright, rng.poisson(5.0, (64, 64)).astype(np.float64)])
    ranges = plane_intensity_ranges(stack)
    assert ranges.shape == (4, 2)
    scaled = normalize_intensity(stack, ranges)
    # The dimmed planes reach the network at the first plane's contrast...
    np.testing.assert_allclose(scaled[1], scaled[0], atol=1e-5)
    np.testing.assert_allclose(scaled[2], scaled[0], atol=1e-5)
    # ...but an empty plane's noise is stretched no more than MAX_PLANE_GAIN times the stack's range.
    whole_lo, whole_hi = np.percentile(stack, [1, 99])
    assert ranges[3, 1] - ranges[3, 0] >= (whole_hi - whole_lo) / MAX_PLANE_GAIN - 1e-9
    assert scaled[3].max() < 0.3
    with pytest.raises(InvalidParameterError, match=r"per-plane intensity ranges must be \(4, 2\)"):
        normalize_intensity(stack, ranges[:3])


def test_plane_normalization_is_a_parameter_of_a_stack_run(engine):
    sample = generate_3d(shape=(8, 64, 64), seed=5, voxel_size=(1.0, 0.5, 0.5), diameter=16, photons=400)
    depth = np.linspace(1.0, 0.3, 8).reshape(-1, 1, 1)  # signal falling with depth
    image = (sample.image * depth).astype(np.float32)
    own = engine.segment(image, SegmentationParams(do_3d=True, use_3d_backend="slice", diameter=16))
    one = engine.segment(image, SegmentationParams(do_3d=True, use_3d_backend="slice", diameter=16,
                                                   normalize_planes=False))
    assert own.info["params"]["normalize_planes"] is True and one.info["params"]["normalize_planes"] is False
    deep = slice(5, 8)  # the dim planes: scaled by their own range they keep at least as many nuclei
    assert len(np.unique(own.labels[deep])) >= len(np.unique(one.labels[deep]))


# --- the guide's façade: segmentation with restoration -------------------------------------

def _noisy_2d():
    return generate_2d(shape=(160, 160), seed=0, photons=4, blur_sigma=1.0, diameter=20.0).image


class _RecordingEngine:
    def __init__(self):
        self.calls = []

    def segment_cellpose(self, image, **kwargs):
        self.calls.append(kwargs)
        info = {"nucleus_count": 0}
        if kwargs["restoration_mode"] != "none":
            _, r = restore(image, kwargs["restoration_mode"], use_cellpose=False)
            info.update({"restoration_requested": kwargs["restoration_mode"], "restoration_mode": r["applied"],
                         "restoration_metrics": r["restoration_metrics"]})
        return np.zeros(np.shape(image), np.uint32), info


@pytest.mark.parametrize("mode", ["sharpen", "", None, "AUTO"])
def test_segment_with_restoration_refuses_unknown_modes(mode):
    with pytest.raises(InvalidParameterError):
        Cellpose3RestorationEngine(engine=object()).segment_with_restoration(_noisy_2d(), restoration_mode=mode)


@pytest.mark.parametrize("mode", ["none", "auto", "denoise"])
def test_segment_with_restoration_delegates_to_the_engine(mode):
    engine = _RecordingEngine()
    masks, info = Cellpose3RestorationEngine(engine=engine).segment_with_restoration(
        _noisy_2d(), model_name="nuclei", restoration_mode=mode, diameter=18, do_3d=False)
    assert engine.calls == [{"model_name": "nuclei", "diameter": 18, "restoration_mode": mode, "do_3d": False}]
    assert masks.shape == (160, 160)
    assert {"snr", "blur_score"} <= set(info["restoration_metrics"])
    assert info["restoration_mode"] == ("none" if mode == "none" else "denoise")


def test_segment_with_restoration_runs_the_default_model_as_the_guide_shows():
    engine = Cellpose3RestorationEngine(gpu_available=False)
    image = generate_2d(shape=(96, 96), seed=12, photons=3, blur_sigma=1.0, diameter=16).image
    masks, info = engine.segment_with_restoration(image=image, restoration_mode="auto", diameter=16)
    assert masks.shape == image.shape and masks.dtype == np.uint32
    assert info["restoration_mode"] == "denoise" and info["restoration_requested"] == "auto"
    assert info["restoration_metrics"]["snr"] > 0 and 0 < info["restoration_metrics"]["blur_score"] <= 1
