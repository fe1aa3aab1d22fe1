import numpy as np
import pytest
from skimage.measure import label
from skimage.segmentation import expand_labels

from segmentation.core.anisotropy import Anisotropy3DPreprocessor
from segmentation.core.errors import InvalidInputError, InvalidParameterError


def blobs_3d(shape, n, seed, radius=2, high=None, dtype=np.uint32):
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int64)
    ids = np.arange(1, n + 1) if high is None else rng.choice(high - 1, size=n, replace=False) + 1
    seeds[tuple(rng.integers(0, s, n) for s in shape)] = ids
    return expand_labels(seeds, radius).astype(dtype)


def labels_of(a):
    return set(np.unique(a).tolist()) - {0}


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "voxel_size",
    [(1.0, 1.0), (1, 1, 1, 1), (0.0, 1, 1), (-2, 0.5, 0.5), (np.nan, 1, 1), (np.inf, 1, 1), (True, 1, 1), "abc", 3],
)
def test_refuses_bad_voxel_size(voxel_size):
    with pytest.raises(InvalidParameterError):
        Anisotropy3DPreprocessor(voxel_size=voxel_size)


def test_derived_properties_and_round_trip():
    pre = Anisotropy3DPreprocessor(voxel_size=(2, 0.5, 0.5))
    assert pre.voxel_size == (2.0, 0.5, 0.5)
    assert pre.anisotropy == 4.0
    assert pre.target_spacing == 0.5
    assert not pre.is_isotropic
    assert pre.isotropic_shape((5, 16, 16)) == (20, 16, 16)
    assert Anisotropy3DPreprocessor.from_dict(pre.to_dict()) == pre
    assert Anisotropy3DPreprocessor(voxel_size=[0.3, 0.3, 0.3]).is_isotropic
    assert Anisotropy3DPreprocessor(voxel_size=(1.0, 0.5, 0.25)).anisotropy == pytest.approx(1 / 0.375)
    with pytest.raises(InvalidParameterError):
        Anisotropy3DPreprocessor.from_dict({"voxel_size": [1, 1, 1], "extra": 1})


# ---------------------------------------------------------------- intensities


def test_resample_to_isotropic_interpolates_linearly_along_z():
    pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 0.5, 0.5))
    z = 6
    volume = np.broadcast_to(np.arange(z, dtype=np.uint16)[:, None, None] * 10, (z, 4, 5)).copy()
    before = volume.copy()
    iso, factors = pre.resample_to_isotropic(volume)
    np.testing.assert_array_equal(volume, before)
    assert iso.dtype == np.float32 and iso.shape == (24, 4, 5)
    assert factors == (4.0, 1.0, 1.0)
    # Voxel k of the isotropic grid is centred at original index (k + 0.5) / 4 - 0.5.
    expected = np.clip((np.arange(24) + 0.5) / 4 - 0.5, 0, z - 1) * 10
    np.testing.assert_allclose(iso[:, 2, 3], expected, atol=1e-4)


def test_resample_to_isotropic_with_unequal_pixels():
    pre = Anisotropy3DPreprocessor(voxel_size=(1.0, 0.5, 1.0))
    iso, factors = pre.resample_to_isotropic(np.ones((3, 4, 5), np.float64))
    assert iso.shape == (6, 4, 10) and factors == (2.0, 1.0, 2.0)
    np.testing.assert_allclose(iso, 1.0)


def test_isotropic_volume_is_copied_not_resampled():
    pre = Anisotropy3DPreprocessor(voxel_size=(0.5, 0.5, 0.5))
    volume = np.random.default_rng(0).random((3, 4, 5))
    iso, factors = pre.resample_to_isotropic(volume)
    assert factors == (1.0, 1.0, 1.0) and iso.dtype == np.float32
    np.testing.assert_allclose(iso, volume, rtol=1e-6)
    iso[0, 0, 0] = -1
    assert volume[0, 0, 0] != -1


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((0, 4, 4)), np.zeros((2, 2, 2), complex)])
def test_resample_to_isotropic_refuses_bad_volumes(bad):
    with pytest.raises(InvalidInputError):
        Anisotropy3DPreprocessor(voxel_size=(2, 1, 1)).resample_to_isotropic(bad)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("voxel_size", [(2.0, 0.5, 0.5), (3.0, 1.0, 1.0), (1.0, 0.5, 1.0)])
def test_labels_round_trip_exactly_for_integer_zoom(voxel_size):
    pre = Anisotropy3DPreprocessor(voxel_size=voxel_size)
    labels = blobs_3d((5, 20, 20), 12, seed=1)
    iso_shape = pre.isotropic_shape(labels.shape)
    # The same nearest-label resampling serves to go up: every isotropic voxel takes the label
    # of the original voxel around its centre.
    labels_iso = pre.resample_masks_to_original(labels, iso_shape)
    assert labels_iso.shape == iso_shape and labels_iso.dtype == labels.dtype
    np.testing.assert_array_equal(pre.resample_masks_to_original(labels_iso, labels.shape), labels)


@pytest.mark.parametrize("dtype, high", [(np.uint16, None), (np.int64, 10**6), (np.uint32, 2**32 - 1)])
@pytest.mark.parametrize("seed", [2, 3])
def test_downsampling_keeps_every_label_and_invents_none(seed, dtype, high):
    pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 0.5, 0.5))
    shape = (6, 24, 24)
    iso_shape = pre.isotropic_shape(shape)
    # Many tiny objects (radius 0 and 1) on the isotropic grid: most are thinner than one z step.
    masks_iso = blobs_3d(iso_shape, 150, seed=seed, radius=0, high=high, dtype=dtype)
    big = blobs_3d(iso_shape, 20, seed=seed + 9, radius=3, high=high, dtype=dtype)
    masks_iso = np.where(masks_iso == 0, big, masks_iso)
    before = masks_iso.copy()
    masks = pre.resample_masks_to_original(masks_iso, shape)
    np.testing.assert_array_equal(masks_iso, before)
    assert masks.shape == shape and masks.dtype == masks_iso.dtype
    assert labels_of(masks) == labels_of(masks_iso)
    # The case is not trivial: plain nearest sampling loses labels, and only re-inserted ones change.
    plain = masks_iso[2::4, :, :]  # original z i is centred in isotropic z 4 i + 2
    lost = labels_of(masks_iso) - labels_of(plain)
    assert len(lost) > 10
    assert np.count_nonzero(masks != plain) == len(lost)


def test_reinsertion_falls_back_to_nearest_free_voxel():
    pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 1.0, 1.0))
    masks_iso = np.zeros((4, 2, 2), np.int32)
    masks_iso[0] = [[1, 2], [3, 4]]  # never sampled: original z 0 looks at isotropic z 1
    masks_iso[1] = [[5, 6], [7, 8]]  # single-voxel labels that must not be displaced
    masks = pre.resample_masks_to_original(masks_iso, (2, 2, 2))
    np.testing.assert_array_equal(masks[0], masks_iso[1])
    assert labels_of(masks) == set(range(1, 9))
    assert not (masks == 0).any()


def test_refuses_more_labels_than_voxels():
    pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 1.0, 1.0))
    masks_iso = np.arange(1, 17, dtype=np.int32).reshape(4, 2, 2)
    with pytest.raises(InvalidInputError):
        pre.resample_masks_to_original(masks_iso, (2, 2, 2))


@pytest.mark.parametrize(
    "masks_iso, shape, error",
    [
        (np.zeros((4, 4), int), (2, 4, 4), InvalidInputError),
        (np.zeros((4, 4, 4), float), (2, 4, 4), InvalidInputError),
        (-np.ones((4, 4, 4), int), (2, 4, 4), InvalidInputError),
        (np.zeros((4, 4, 4), int), (2, 4), InvalidParameterError),
        (np.zeros((4, 4, 4), int), (0, 4, 4), InvalidParameterError),
    ],
)
def test_resample_masks_refuses_bad_input(masks_iso, shape, error):
    with pytest.raises(error):
        Anisotropy3DPreprocessor(voxel_size=(2, 1, 1)).resample_masks_to_original(masks_iso, shape)


def test_image_to_isotropic_and_back_keeps_all_labels():
    """The guide's workflow: resample, label on the isotropic grid, bring the labels back."""
    pre = Anisotropy3DPreprocessor(voxel_size=(2.0, 0.5, 0.5))
    labels = blobs_3d((6, 32, 32), 10, seed=5, radius=3)
    image = (labels > 0).astype(np.float32) * 100
    iso, _ = pre.resample_to_isotropic(image)
    masks_iso = label(iso > 50).astype(np.uint32)
    masks = pre.resample_masks_to_original(masks_iso, image.shape)
    assert masks.shape == image.shape
    assert labels_of(masks) == labels_of(masks_iso)
    np.testing.assert_array_equal(masks > 0, labels > 0)
