"""The default model's training loop: Cellpose's schedule, and a run that resumes where it stopped."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cellpose.resnet_torch import CPnet  # noqa: E402
from skimage.segmentation import relabel_sequential  # noqa: E402

from segmentation.core.engine import normalize_intensity  # noqa: E402
from segmentation.core.synthetic import generate_2d  # noqa: E402
from segmentation.core.training import Checkpoint, FitSettings, fit, lr_schedule  # noqa: E402


def test_the_schedule_warms_up_holds_and_ends_with_ten_halvings():
    rates = lr_schedule(120, 0.05)
    assert len(rates) == 120
    assert rates[0] == 0 and rates[9] == pytest.approx(0.05)
    assert np.all(rates[10:70] == 0.05)
    assert rates[70] == pytest.approx(0.025) and rates[-1] == pytest.approx(0.05 / 2**10)
    assert np.all(np.diff(rates[70:]) <= 0)
    assert np.all(lr_schedule(40, 0.1)[10:] == 0.1)  # no halvings in short runs
    assert len(lr_schedule(5, 0.1)) == 5


def _data(n, seed):
    samples = [generate_2d(shape=(96, 96), seed=(seed, i)) for i in range(n)]
    return [normalize_intensity(s.image) for s in samples], [s.labels.astype(np.uint32) for s in samples]


def _net(seed):
    torch.manual_seed(seed)
    return CPnet([2, 8, 16], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=17.0)


SETTINGS = FitSettings(n_epochs=4, nimg_per_epoch=4, learning_rate=0.05, weight_decay=1e-4, batch_size=2,
                       seed=0, save_every=2, bsize=32)


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(tmp_path):
    images, labels = _data(4, 1)
    test_images, test_labels = _data(2, 2)
    whole = _net(0)
    whole_losses, _ = fit(whole, images, labels, test_images, test_labels, SETTINGS,
                          Checkpoint(tmp_path / "whole.pt"))

    first = _net(0)
    checkpoint = Checkpoint(tmp_path / "split.pt")
    fit(first, images, labels, test_images, test_labels, SETTINGS, checkpoint, until=2)
    assert torch.load(checkpoint.path, weights_only=False)["epoch"] == 2
    later = _net(7)  # another process: other initial weights, which the checkpoint replaces
    resumed_losses, _ = fit(later, images, labels, test_images, test_labels, SETTINGS, checkpoint)

    np.testing.assert_allclose(resumed_losses, whole_losses, rtol=1e-4)
    for name, value in whole.state_dict().items():
        np.testing.assert_allclose(later.state_dict()[name].numpy(), value.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    net = _net(0)
    checkpoint = Checkpoint(tmp_path / "run.pt")
    checkpoint.save(epoch=2, net=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), settings=SETTINGS,
                    train_losses=np.zeros(4), test_losses=np.zeros(4))
    assert checkpoint.load(SETTINGS)["epoch"] == 2
    with pytest.raises(ValueError, match="another run"):
        checkpoint.load(FitSettings(**{**SETTINGS.__dict__, "learning_rate": 0.1}))
    assert Checkpoint(tmp_path / "none.pt").load(SETTINGS) is None


def test_the_loop_trains_as_cellposes_train_seg_does(tmp_path):
    """Same data, seeds and settings: the same losses and weights as ``cellpose.train.train_seg``."""
    from cellpose import train

    images, labels = _data(4, 1)
    test_images, test_labels = _data(2, 2)
    settings = FitSettings(**{**SETTINGS.__dict__, "n_epochs": 3, "save_every": 5})
    ours = _net(0)
    our_losses, _ = fit(ours, images, labels, test_images, test_labels, settings, Checkpoint(tmp_path / "c.pt"))
    theirs = _net(0)
    _, their_losses, _ = train.train_seg(
        theirs, train_data=images, train_labels=labels, test_data=test_images, test_labels=test_labels,
        channels=[0, 0], normalize=False, batch_size=2, learning_rate=0.05, weight_decay=1e-4, SGD=True,
        n_epochs=3, nimg_per_epoch=4, save_path=str(tmp_path), min_train_masks=1, bsize=32, model_name="cp")
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-5)
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def test_a_volume_gives_three_xy_planes_and_its_zy_and_zx_sections_at_isotropic_scale():
    from segmentation.core.training import _sections_of_volume

    one = _sections_of_volume(np.random.default_rng(4), (0, 3, 0), None)
    two = _sections_of_volume(np.random.default_rng(4), (0, 3, 0), None, per_axis=2)
    size = one[0][0].shape[0]
    assert [img.shape for img, _ in one[:3]] == [(size, size)] * 3 == [img.shape for img, _ in two[:3]]
    # The same volume and xy planes; two zy and two zx sections instead of one each, all as
    # tall as the stack stretched to isotropic voxels (more planes than the stack has).
    for (a, la), (b, lb) in zip(one[:3], two[:3], strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    sections = [img for img, _ in two[3:]]
    assert len(sections) == 4 and len(one) == 5
    assert len({s.shape for s in sections}) == 1 and sections[0].shape[1] == size
    for image, labels in two:
        assert image.dtype == np.float32 and image.shape == labels.shape
        assert set(np.unique(labels)) == set(range(int(labels.max()) + 1))  # relabelled 1..n


def test_ortho_sections_are_zy_and_zx_sections_of_the_stack_as_true3d_shows_it():
    """Restored and normalised as the engine does a stack by default (restoration auto, each
    plane by its own range), stretched to isotropic voxels: z the sections' vertical axis."""
    from segmentation.core.engine import plane_intensity_ranges
    from segmentation.core.restoration import restore
    from segmentation.core.synthetic import NucleiConfig, generate_3d
    from segmentation.core.training import (
        ORTHO_PHOTONS_RANGE,
        ORTHO_STACKED_RANGE,
        _ortho_sections_of_volume,
        resample_isotropic,
    )

    sections = _ortho_sections_of_volume(np.random.default_rng(4), (0, 4, 0), None, per_axis=2)
    rng = np.random.default_rng(4)  # the draws the function makes before its sections
    z_step = float(rng.uniform(1.0, 5.0)) * 0.5
    nz = int(np.clip(round(float(rng.uniform(8.0, 40.0)) / z_step), 4, 64))
    size = int(rng.choice([160, 192]))
    config = NucleiConfig(photons_range=ORTHO_PHOTONS_RANGE, stacked_fraction=float(rng.uniform(*ORTHO_STACKED_RANGE)))
    vol = generate_3d(shape=(nz, size, size), seed=(0, 4, 0), voxel_size=(z_step, 0.5, 0.5), config=config)
    data, _ = restore(vol.image, "auto")
    image, labels = resample_isotropic(normalize_intensity(data, plane_intensity_ranges(data)), vol.labels,
                                       factor=z_step / 0.5)
    assert len(sections) == 4
    for k, (section, section_labels) in enumerate(sections):
        stack, stack_labels = (image, labels) if k < 2 else (image.transpose(0, 2, 1), labels.transpose(0, 2, 1))
        assert section.shape == (image.shape[0], size) and section.dtype == np.float32
        at = [i for i in range(size) if np.array_equal(stack[:, i, :], section)]
        assert at, f"section {k} is not a {'zy' if k < 2 else 'zx'} section of the stretched stack"
        expected = relabel_sequential(stack_labels[:, at[0], :])[0]
        np.testing.assert_array_equal(section_labels, expected)
        assert section_labels.dtype == np.uint32


def test_an_ortho_run_saves_its_init_for_the_xy_planes_and_the_trained_network_for_zy_and_zx(tmp_path):
    from segmentation.core.modelzoo import load_model
    from segmentation.core.training import save_weights, train_default_model

    init = _net(0)
    init.diam_labels.data = torch.Tensor([17.0])
    save_weights(init, tmp_path / "init.pt", {})
    out = tmp_path / "ortho.pt"
    record = train_default_model(out, n_epochs=2, nimg_per_epoch=4, batch_size=2, nbase=(2, 8, 16),
                                 n_volumes=1, sections_per_axis=1, bsize=32, init=str(tmp_path / "init.pt"),
                                 views="ortho", n_test_volumes=1)
    assert record["views"] == "ortho" and record["n_2d"] == 480  # recorded, unused
    model = load_model(str(out))
    xy, ortho = model.cellpose_model.net, model.cellpose_model.net_ortho
    changed = 0
    for name, value in init.state_dict().items():
        if not value.is_floating_point() or "diam" in name:
            continue
        np.testing.assert_allclose(xy.state_dict()[name].numpy(), value.half().float().numpy(), err_msg=name)
        changed += not np.allclose(ortho.state_dict()[name].numpy(), value.half().float().numpy())
    assert changed > 0  # the ortho network is the trained one
    assert float(xy.diam_labels) == 17.0 and float(model.cellpose_model.diam_labels) == 17.0  # init's
    with pytest.raises(ValueError, match="give init"):
        train_default_model(tmp_path / "x.pt", views="ortho")
