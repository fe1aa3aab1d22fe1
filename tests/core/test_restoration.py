import json
import math
import sys

import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation.core import restoration
from segmentation.core.errors import InvalidInputError, InvalidParameterError
from segmentation.core.restoration import (
    DEBLUR_MIN_BLUR_SIGMA,
    DENOISE_MAX_ROBUST_SNR,
    RestorationParams,
    measure_image_quality,
    restoration_reference,
    restore,
    should_use_restoration,
)
from segmentation.core.synthetic import generate_2d, generate_3d

SHAPE_2D = (160, 160)
SHAPE_3D = (8, 96, 96)


def _image(ndim, *, photons, blur, seed=0, diameter=20.0):
    if ndim == 2:
        return generate_2d(shape=SHAPE_2D, seed=seed, photons=photons, blur_sigma=blur, diameter=diameter).image
    return generate_3d(shape=SHAPE_3D, seed=seed, photons=photons, blur_sigma=blur, diameter=diameter).image


def _clean(ndim=2, **kw):
    return _image(ndim, photons=1000, blur=1.0, **kw)


def _noisy(ndim=2, **kw):
    return _image(ndim, photons=4, blur=1.0, **kw)


def _blurred(ndim=2, **kw):
    return _image(ndim, photons=1000, blur=4.0, **kw)


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# --- the auto decision ---------------------------------------------------------------------

@pytest.mark.parametrize("ndim, make, expected", [
    (2, _clean, "none"), (2, _noisy, "denoise"), (2, _blurred, "deblur"),
    # A stack is only ever denoised by auto: its blur is mostly axial, which the planes'
    # deconvolution does not undo.
    (3, _clean, "none"), (3, _noisy, "denoise"), (3, _blurred, "none"),
])
def test_auto_decides_from_the_kind_of_degradation(ndim, make, expected):
    image = make(ndim, seed=3)
    assert should_use_restoration(image) == expected
    _, info = restore(image, "auto", use_cellpose=False)
    assert info["restoration_mode"] == "auto"
    assert info["applied"] == expected


def test_a_blurred_stack_measures_blurred_and_is_deblurred_when_asked():
    stack = _blurred(3, seed=3)
    assert measure_image_quality(stack)["blur_sigma"] > DEBLUR_MIN_BLUR_SIGMA
    assert restoration_reference(stack)["auto"] == "none"
    _, info = restore(stack, "deblur", use_cellpose=False)
    assert info["applied"] == "deblur" and info["method"].endswith("richardson_lucy")
    # One plane of it is a 2D image, which auto deblurs.
    assert should_use_restoration(stack[4]) == "deblur"


@pytest.mark.parametrize("diameter", [10.0, 20.0, 40.0])
def test_blur_is_told_apart_across_nucleus_sizes(diameter):
    for seed in range(2):
        sharp = measure_image_quality(_clean(diameter=diameter, seed=seed))
        # 3.5 px: at 3 px the smallest nuclei are estimated at ~2.1-2.2, too close to call.
        blurred = measure_image_quality(_image(2, photons=300, blur=3.5, diameter=diameter, seed=seed))
        assert sharp["blur_sigma"] < DEBLUR_MIN_BLUR_SIGMA < blurred["blur_sigma"]
        assert sharp["robust_snr"] > DENOISE_MAX_ROBUST_SNR and blurred["robust_snr"] > DENOISE_MAX_ROBUST_SNR


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_blur_sigma_estimates_the_gaussian_psf(sigma):
    m = measure_image_quality(_image(2, photons=2000, blur=sigma, diameter=25.0, seed=1))
    assert m["blur_fit_bins"] >= 3
    assert abs(m["blur_sigma"] - sigma) < 0.35 * sigma + 0.3


def test_noise_sigma_is_the_wavelet_mad_estimate_on_the_scaled_image():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 256)[None, :] * np.ones((256, 1))
    image = 10 * ramp + rng.normal(0, 0.5, (256, 256))
    lo, hi = np.percentile(image, [1, 99.8])
    m = measure_image_quality(image)
    assert m["noise_sigma"] == pytest.approx(0.5 / (hi - lo), rel=0.05)


def test_the_naive_guide_metrics_are_reported_but_do_not_decide():
    noisy = measure_image_quality(_noisy())
    # mean / std of a noisy image with a camera offset looks excellent, yet it is noisy.
    assert noisy["snr"] > 10
    assert should_use_restoration(_noisy()) == "denoise"
    for image in (_clean(), _noisy(), _blurred()):
        assert 0 < measure_image_quality(image)["blur_score"] <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_blur_score_reads_the_guides_way_on_noise_free_images(seed):
    sharp = measure_image_quality(_image(2, photons=1e6, blur=1.0, seed=seed))
    blurred = measure_image_quality(_image(2, photons=1e6, blur=3.0, seed=seed))
    assert sharp["blur_score"] < 0.1 < blurred["blur_score"]


# --- restoration ---------------------------------------------------------------------------

@pytest.mark.parametrize("ndim", [2, 3])
def test_denoise_raises_robust_snr_and_approaches_the_noise_free_image(ndim):
    noisy = _noisy(ndim, seed=5)
    truth = _image(ndim, photons=1e6, blur=1.0, seed=5)
    restored, info = restore(noisy, "denoise", use_cellpose=False)
    assert info["applied"] == "denoise" and info["method"] == "nl_means"
    before, after = info["restoration_metrics"], info["metrics_after"]
    assert after["robust_snr"] > 2 * before["robust_snr"]
    assert after["noise_sigma"] < 0.5 * before["noise_sigma"]
    assert _corr(restored, truth) > _corr(noisy, truth) + 0.05


@pytest.mark.parametrize("ndim", [2, 3])
def test_deblur_sharpens_and_approaches_the_sharp_image(ndim):
    blurred = _blurred(ndim, seed=6)
    sharp = _image(ndim, photons=1e6, blur=0.7, seed=6)
    restored, info = restore(blurred, "deblur", use_cellpose=False)
    assert info["applied"] == "deblur" and info["method"].endswith("richardson_lucy")
    assert info["metrics_after"]["blur_sigma"] < info["restoration_metrics"]["blur_sigma"]
    assert _corr(restored, sharp) > _corr(blurred, sharp)

    def rel_error(x):  # after the best affine match of intensities, relative to the truth's spread
        design = np.stack([x.ravel(), np.ones(x.size)], 1)
        coef, *_ = np.linalg.lstsq(design, sharp.ravel(), rcond=None)
        return float(np.mean((design @ coef - sharp.ravel()) ** 2) / sharp.var())

    assert rel_error(restored) < 0.9 * rel_error(blurred)


def test_deblur_of_a_noisy_image_denoises_first():
    image = _image(2, photons=30, blur=4.0, seed=2)
    _, info = restore(image, "deblur", use_cellpose=False)
    assert info["method"] == "nl_means+richardson_lucy"


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("mode", ["none", "auto", "denoise", "deblur"])
def test_restore_keeps_shape_returns_float32_in_input_units_and_json_info(ndim, mode):
    image = _noisy(ndim, seed=1)
    restored, info = restore(image, mode, use_cellpose=False)
    assert restored.shape == image.shape and restored.dtype == np.float32
    assert np.isfinite(restored).all()
    # Same intensity units: the background level stays where it was.
    assert abs(np.median(restored) - np.median(image)) < 0.2 * (np.percentile(image, 99) - np.percentile(image, 1))
    text = json.dumps(info, allow_nan=False)
    assert json.loads(text)["restoration_mode"] == mode
    assert {"snr", "blur_score", "noise_sigma", "robust_snr", "blur_sigma"} <= set(info["restoration_metrics"])
    if mode == "none":
        assert info["applied"] == "none" and info["method"] == "none"
        np.testing.assert_allclose(restored, image)


@pytest.mark.parametrize("function", [
    measure_image_quality, should_use_restoration,
    lambda x: restore(x, "denoise", use_cellpose=False), lambda x: restore(x, "deblur", use_cellpose=False),
    lambda x: restore(x, "none"),
])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_inputs_are_never_modified(function, dtype):
    image = (_noisy(2, seed=4) if dtype == np.float32 else _blurred(2, seed=4)).astype(dtype)
    before = image.copy()
    image.flags.writeable = False  # a write would raise
    out = function(image)
    np.testing.assert_array_equal(image, before)
    if isinstance(out, tuple):
        assert not np.shares_memory(out[0], image)


def test_metrics_are_finite_floats_for_a_constant_image():
    image = np.full((32, 32), 7.0)
    m = measure_image_quality(image)
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    json.dumps(m, allow_nan=False)
    assert should_use_restoration(image) == "none"
    for mode in ("denoise", "deblur"):
        restored, _ = restore(image, mode, use_cellpose=False)
        np.testing.assert_allclose(restored, image)


def test_a_volume_with_empty_slices_is_restored_slice_by_slice():
    volume = _noisy(3, seed=2)
    volume[0] = volume[0].min()
    restored, info = restore(volume, "denoise", use_cellpose=False)
    assert restored.shape == volume.shape
    np.testing.assert_allclose(restored[0], volume[0], atol=1e-3 * np.ptp(volume))


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [
    np.zeros(16), np.zeros((2, 2, 16, 16)), np.zeros((0, 16)), np.zeros((4, 4)),
    np.array([["a"] * 16] * 16), np.where(np.eye(16) > 0, np.nan, 1.0), np.full((16, 16), np.inf),
])
@pytest.mark.parametrize("function", [measure_image_quality, should_use_restoration, lambda x: restore(x, "auto")])
def test_bad_images_are_refused(image, function):
    with pytest.raises(InvalidInputError):
        function(image)


@pytest.mark.parametrize("mode", ["sharpen", "", None, "AUTO"])
def test_unknown_modes_are_refused(mode):
    with pytest.raises(InvalidParameterError):
        restore(_clean(), mode)


def test_params_round_trip_and_validate():
    params = RestorationParams(nlm_h=0.9, rl_iterations=12)
    assert RestorationParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    for bad in ({"nlm_h": 0}, {"nlm_h": float("nan")}, {"rl_iterations": 0}, {"rl_iterations": 2.5},
                {"rl_psf_fraction": 1.5}, {"nlm_patch_size": True}, {"use_cellpose": "yes"}):
        with pytest.raises(InvalidParameterError):
            RestorationParams(**bad)
    with pytest.raises(InvalidParameterError):
        RestorationParams.from_dict({"nlm_h": 1.0, "strength": 3})


# --- Cellpose 3 networks, when (and only when) their weights are on disk --------------------

class _FakeDenoiser:
    def __init__(self, fail=False):
        self.fail = fail
        self.calls = []

    def eval(self, x, channels=None, normalize=True, diameter=None):
        self.calls.append({"shape": x.shape, "normalize": normalize, "diameter": diameter})
        if self.fail:
            raise RuntimeError("weights do not fit")
        lo, hi = normalize["lowhigh"]
        return ndi.gaussian_filter((x - lo) / (hi - lo), 1.0)[..., np.newaxis]


def test_weights_are_looked_for_where_cellpose_keeps_them(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "cellpose.models", raising=False)
    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path))
    assert restoration.cellpose_restoration_weights("denoise") is None
    (tmp_path / "denoise_nuclei").write_bytes(b"weights")
    assert restoration.cellpose_restoration_weights("denoise") == tmp_path / "denoise_nuclei"
    assert restoration.cellpose_restoration_weights("deblur") is None


def test_without_weights_the_fallback_runs_and_nothing_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(restoration, "_cellpose_model_dir", lambda: tmp_path)

    def must_not_load(*args):
        raise AssertionError("a Cellpose network was loaded without its weights on disk")

    monkeypatch.setattr(restoration, "_cellpose_restorer", must_not_load)
    _, info = restore(_noisy(), "denoise")
    assert info["method"] == "nl_means"


@pytest.mark.parametrize("ndim", [2, 3])
def test_with_weights_the_cellpose_network_runs_on_each_plane(tmp_path, monkeypatch, ndim):
    (tmp_path / "denoise_nuclei").write_bytes(b"weights")
    fake = _FakeDenoiser()
    monkeypatch.setattr(restoration, "_cellpose_model_dir", lambda: tmp_path)
    monkeypatch.setattr(restoration, "_cellpose_restorer", lambda path, gpu: fake)
    image = _noisy(ndim)
    restored, info = restore(image, "denoise", diameter=20.0)
    assert info["method"] == "cellpose:denoise_nuclei"
    assert restored.shape == image.shape
    assert len(fake.calls) == (1 if ndim == 2 else image.shape[0])
    assert fake.calls[0]["diameter"] == 20.0
    assert abs(np.median(restored) - np.median(image)) < 0.2 * np.ptp(image)
    # use_cellpose=False forces the fallback even with the weights present.
    _, info = restore(image, "denoise", use_cellpose=False)
    assert info["method"] == "nl_means"


def test_the_real_cellpose_denoise_model_runs_from_a_local_weights_file(tmp_path, monkeypatch):
    # Random weights of the right architecture: this checks the plumbing against Cellpose's
    # DenoiseModel (loading from a path, normalisation, output shape), not the restoration.
    from cellpose.resnet_torch import CPnet

    CPnet([1, 32, 64, 128, 256], 1, sz=3, max_pool=True, diam_mean=17.0).save_model(str(tmp_path / "denoise_nuclei"))
    monkeypatch.setattr(restoration, "_cellpose_model_dir", lambda: tmp_path)
    monkeypatch.setattr(restoration, "_restorers", {})
    volume = generate_3d(shape=(2, 64, 64), seed=0, photons=4).image
    restored, info = restore(volume, "denoise", diameter=20.0)
    assert info["method"] == "cellpose:denoise_nuclei", info.get("cellpose_error")
    assert restored.shape == volume.shape and np.isfinite(restored).all()


def test_a_failing_network_falls_back_and_says_why(tmp_path, monkeypatch):
    (tmp_path / "deblur_nuclei").write_bytes(b"weights")
    monkeypatch.setattr(restoration, "_cellpose_model_dir", lambda: tmp_path)
    monkeypatch.setattr(restoration, "_cellpose_restorer", lambda path, gpu: _FakeDenoiser(fail=True))
    _, info = restore(_blurred(), "deblur")
    assert info["method"].endswith("richardson_lucy")
    assert "weights do not fit" in info["cellpose_error"]
