"""segmentation.core.modelzoo: where a model name points, the shipped defaults, the weights' hash."""

import hashlib
import json

import pytest

from segmentation.core.errors import ModelNotAvailableError
from segmentation.core.modelzoo import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_3D,
    SHIPPED_MODELS_DIR,
    default_model_for,
    file_sha256,
    load_model,
    resolve_model,
    shipped_models,
)


def test_it_ships_both_defaults_with_their_cards():
    assert {DEFAULT_MODEL, DEFAULT_MODEL_3D} <= set(shipped_models())
    for name in (DEFAULT_MODEL, DEFAULT_MODEL_3D):
        assert json.loads((SHIPPED_MODELS_DIR / f"{name}.json").read_text())["name"] == name



@pytest.mark.parametrize("name", shipped_models())
def test_each_shipped_models_training_record_names_the_hash_of_the_file_shipped(name):
    # The model cards point users to the record for the weights' SHA-256: it must be the file's.
    record = json.loads((SHIPPED_MODELS_DIR / f"{name}.train.json").read_text())
    assert record["sha256"] == file_sha256(SHIPPED_MODELS_DIR / f"{name}.pt")

@pytest.mark.parametrize("shape, expected", [
    ((64, 64), DEFAULT_MODEL), ((1, 64, 64), DEFAULT_MODEL), ((2, 64, 64), DEFAULT_MODEL_3D),
    ((16, 128, 128), DEFAULT_MODEL_3D),
])
def test_it_picks_the_stack_model_for_two_planes_or_more(shape, expected):
    assert default_model_for(shape) == expected


@pytest.mark.parametrize("name", [None, "", "default", DEFAULT_MODEL])
def test_it_resolves_the_default_names_to_the_shipped_file(name):
    ref = resolve_model(name)
    assert (ref.name, ref.kind, ref.path) == (DEFAULT_MODEL, "shipped", SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.pt")


def test_it_resolves_a_file_and_refuses_what_does_not_exist(tmp_path):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"not read yet")
    ref = resolve_model(str(weights))
    assert (ref.name, ref.kind, ref.path) == ("mine.pt", "file", weights.resolve())
    with pytest.raises(ModelNotAvailableError, match="model file not found"):
        resolve_model(str(tmp_path / "gone.pt"))
    with pytest.raises(ModelNotAvailableError, match="unknown model 'nope'"):
        resolve_model("nope")


def test_it_hashes_a_file_a_block_at_a_time_as_hashlib_does_whole(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # past one 1 MiB block
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_it_loads_the_shipped_default_once_and_names_its_card_version():
    model = load_model(DEFAULT_MODEL)
    card = json.loads((SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    assert (model.kind, model.version) == ("shipped", card["version"])
    assert model.sha256 == file_sha256(SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.pt")
    assert load_model(DEFAULT_MODEL) is model  # cached per process
    assert load_model(DEFAULT_MODEL, fresh=True) is not model


def _tiny_cpnet(seed):
    import torch
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(seed)
    net = CPnet([2, 8, 16], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=17.0)
    net.diam_labels.data = torch.Tensor([17.0])
    return net


def _flows_3d(model, volume):
    _, flows, _ = model.cellpose_model.eval(volume, channels=[0, 0], diameter=17.0, normalize=False, do_3D=True,
                                            z_axis=0, anisotropy=2.0, compute_masks=False)
    return flows[1], flows[2]


def test_a_file_with_an_ortho_network_runs_it_on_the_zy_and_zx_views_only(tmp_path):
    """An EZQuant file may hold a second network for true3d's zy and zx views (``ortho_state_dict``,
    Cellpose's ``net_ortho``): the xy planes keep the first, 2D images never see the second."""
    import numpy as np

    from segmentation.core.synthetic import generate_3d
    from segmentation.core.training import save_weights

    xy, other = _tiny_cpnet(0), _tiny_cpnet(1)
    save_weights(xy, tmp_path / "plain.pt", {})
    save_weights(xy, tmp_path / "same.pt", {}, ortho=_tiny_cpnet(0))
    save_weights(xy, tmp_path / "ortho.pt", {}, ortho=other)
    plain, same, ortho = (load_model(str(tmp_path / f"{n}.pt")) for n in ("plain", "same", "ortho"))
    assert plain.cellpose_model.net_ortho is None and not plain.describe()["ortho_network"]
    assert ortho.describe()["ortho_network"]
    for name, value in other.state_dict().items():  # saved in float16, loaded back as float32
        np.testing.assert_allclose(ortho.cellpose_model.net_ortho.state_dict()[name].numpy(),
                                   value.half().float().numpy(), err_msg=name)

    volume = generate_3d(shape=(6, 48, 48), seed=3, voxel_size=(1.0, 0.5, 0.5)).image
    volume = (volume - volume.min()) / np.ptp(volume)
    flows_plain, flows_same, flows_ortho = (_flows_3d(m, volume) for m in (plain, same, ortho))
    for a, b in zip(flows_plain, flows_same, strict=True):  # the same weights on every view: the same flows
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(flows_plain[1], flows_ortho[1], atol=1e-3)  # cell probability: the mean of 3 views
    assert not np.allclose(flows_plain[0][0], flows_ortho[0][0], atol=1e-3)  # dz: zy and zx views only
    plane = volume[3]
    _, flows_2d_plain, _ = plain.cellpose_model.eval(plane, channels=[0, 0], diameter=17.0, normalize=False,
                                                     compute_masks=False)
    _, flows_2d_ortho, _ = ortho.cellpose_model.eval(plane, channels=[0, 0], diameter=17.0, normalize=False,
                                                     compute_masks=False)
    np.testing.assert_array_equal(flows_2d_plain[1], flows_2d_ortho[1])


def test_an_ortho_network_of_another_shape_is_refused(tmp_path):
    import torch
    from cellpose.resnet_torch import CPnet

    from segmentation.core.training import save_weights

    torch.manual_seed(0)
    wider = CPnet([2, 16, 32], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=17.0)
    with pytest.raises(ValueError, match="nbase"):
        save_weights(_tiny_cpnet(0), tmp_path / "bad.pt", {}, ortho=wider)
    assert not (tmp_path / "bad.pt").exists()


def test_the_stack_default_keeps_v2s_network_for_the_xy_planes_and_has_its_own_for_zy_and_zx():
    """ezq_nuclei_v3 = v2's network, unchanged (so 2D, slice, hybrid2d3d and the diameter
    estimate give v2's results), and a second network for true3d's orthogonal views."""
    import torch

    v2 = torch.load(SHIPPED_MODELS_DIR / "ezq_nuclei_v2.pt", weights_only=True)
    v3 = torch.load(SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL_3D}.pt", weights_only=True)
    assert DEFAULT_MODEL_3D == "ezq_nuclei_v3" and v3["nbase"] == v2["nbase"]
    assert (v3["diam_mean"], v3["diam_labels"]) == (v2["diam_mean"], v2["diam_labels"])
    assert v3["state_dict"].keys() == v2["state_dict"].keys() == v3["ortho_state_dict"].keys()
    for name, value in v2["state_dict"].items():
        assert torch.equal(v3["state_dict"][name], value), name
    assert any(not torch.equal(v3["ortho_state_dict"][n], v) for n, v in v2["state_dict"].items())
    assert load_model(DEFAULT_MODEL_3D).describe()["ortho_network"]
    assert not load_model("ezq_nuclei_v2").describe()["ortho_network"]
