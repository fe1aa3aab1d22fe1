import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation.core.errors import InvalidParameterError
from segmentation.core.synthetic import NucleiConfig, degrade, generate_2d, generate_3d


def test_same_seed_same_image_and_labels_match_the_count():
    a = generate_2d(shape=(96, 96), seed=4)
    b = generate_2d(shape=(96, 96), seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    ids = np.unique(a.labels)
    np.testing.assert_array_equal(ids, np.arange(0, a.n_nuclei + 1))
    assert a.image.dtype == np.float32 and a.labels.dtype == np.uint32


def test_nuclei_are_brighter_than_background():
    s = generate_2d(shape=(128, 128), seed=1, photons=500, blur_sigma=1.0)
    assert s.image[s.labels > 0].mean() > s.image[s.labels == 0].mean() * 1.5


def test_fewer_photons_means_noisier():
    clean = generate_2d(shape=(128, 128), seed=2, photons=2000, blur_sigma=1.0)
    noisy = generate_2d(shape=(128, 128), seed=2, photons=5, blur_sigma=1.0)

    def rel_noise(s):
        # Pixel-to-pixel fluctuation (what shot noise adds) relative to the nuclear signal.
        residual = s.image - ndi.uniform_filter(s.image, 3)
        inside = s.labels > 0
        return residual[inside].std() / (s.image[inside].mean() - s.params["offset"])
    assert rel_noise(noisy) > 2 * rel_noise(clean)


def test_diameter_controls_nucleus_size():
    small = generate_2d(shape=(192, 192), seed=3, diameter=10)
    large = generate_2d(shape=(192, 192), seed=3, diameter=36)
    area = lambda s: np.median(np.bincount(s.labels.ravel())[1:])  # noqa: E731
    assert area(large) > 6 * area(small)


def test_3d_nuclei_span_several_slices():
    v = generate_3d(shape=(16, 64, 64), seed=0, voxel_size=(1.0, 0.5, 0.5), diameter=16)
    assert v.image.shape == v.labels.shape == (16, 64, 64)
    spans = [np.ptp(np.nonzero(v.labels == i)[0]) + 1 for i in range(1, v.n_nuclei + 1)]
    assert np.median(spans) >= 3
    assert v.voxel_size == (1.0, 0.5, 0.5)


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_degrade_keeps_shape_and_input(kind):
    s = generate_2d(shape=(64, 64), seed=0)
    before = s.image.copy()
    out = degrade(s.image, kind, strength=0.8, seed=1)
    assert out.shape == s.image.shape and not np.array_equal(out, s.image)
    np.testing.assert_array_equal(s.image, before)


@pytest.mark.parametrize("call", [
    lambda: generate_2d(shape=(4, 64)),
    lambda: generate_3d(shape=(8, 64, 64), voxel_size=(1, 0.5, 0.4)),
    lambda: NucleiConfig(diameter_range=(30, 10)),
    lambda: NucleiConfig(photons_range=(0, 10)),
    lambda: degrade(np.zeros((8, 8)), "smudge"),
    lambda: NucleiConfig.from_dict({"colour": 1}),
])
def test_bad_generator_parameters_are_refused(call):
    with pytest.raises(InvalidParameterError):
        call()


def test_config_round_trip():
    c = NucleiConfig(diameter_range=(12, 20), photons_range=(5, 50))
    assert NucleiConfig.from_dict(c.to_dict()) == c
