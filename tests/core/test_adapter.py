"""ModelAdapter (LoRA on a CPnet), its files, and retraining from corrections.

A tiny CPnet (``nbase = [2, 8, 16]``) saved as an EZQuant weights file stands in for the
shipped model, so that every test trains and segments in well under a second per step.
"""

import json

import numpy as np
import pytest

from segmentation.core import (
    ActiveLearningManager,
    AdapterParams,
    AdapterTrainingParams,
    ImageCrop,
    ModelAdapter,
    RetrainingParams,
    SegmentationEngine,
    SegmentationParams,
    TrainingExample,
    correction_example,
    load_model,
    synthetic,
)
from segmentation.core.corrections import holdout_split
from segmentation.core.errors import InvalidInputError, InvalidParameterError, ModelNotAvailableError

torch = pytest.importorskip("torch")

FAST = AdapterTrainingParams(steps=4, batch_size=2, warmup=1, crop_size=64, checkpoint_every=2)


def _tiny_cpnet(seed):
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(seed)
    net = CPnet([2, 8, 16], 3, sz=3, mkldnn=False, max_pool=True, diam_mean=17.0)
    with torch.no_grad():  # non-trivial batch-norm statistics, so freezing them is tested
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return net


def _save_tiny(path, seed=0):
    from segmentation.core.training import save_weights

    save_weights(_tiny_cpnet(seed), path, {"test": True})
    return str(path)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp("base") / "tiny.pt")


@pytest.fixture(scope="module")
def sample():
    s = synthetic.generate_2d((64, 64), seed=5, diameter=14)
    lo, hi = np.percentile(s.image, [1, 99])
    return ((s.image - lo) / (hi - lo)).astype(np.float32), s.labels


def _examples(sample, n=3):
    image, labels = sample
    out = []
    for k in [int(i) for i in np.unique(labels)[1:n + 1]]:
        mask = labels == k
        out.append(correction_example(image, mask, np.where(mask, 1, 0), context_labels=labels, diameter=14,
                                      correction_id=k))
    return out


def _input(sample):
    image = sample[0]
    return torch.from_numpy(np.stack([image, np.zeros_like(image)])[None])


def _base_net(path):
    net = load_model(path, fresh=True).cellpose_model.net
    net.mkldnn = False
    return net.eval()


def _lora_state_equal(a, b):
    sa, sb = a.state(), b.state()
    return sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


# --- the adapter ------------------------------------------------------------------------------


def test_it_starts_as_the_base_network(tiny_base, sample):
    adapter = ModelAdapter(tiny_base)
    with torch.no_grad():
        expected = _base_net(tiny_base)(_input(sample))[0]
    assert torch.equal(adapter.forward(_input(sample)), expected)        # B = 0: exactly the base
    assert adapter.n_parameters > 0 and len(adapter.layer_names) == sum(
        isinstance(m, torch.nn.Conv2d) for m in _base_net(tiny_base).modules())


def test_it_trains_the_adapter_only_and_keeps_the_base_frozen(tiny_base, sample):
    adapter = ModelAdapter(tiny_base)
    trainable = {id(p) for p in adapter.trainable_parameters()}
    before = {k: v.clone() for k, v in adapter.net.state_dict().items() if "lora_" not in k}
    lora_before = adapter.state()
    record = adapter.train(_examples(sample), FAST)

    assert all(not p.requires_grad for p in adapter.net.parameters() if id(p) not in trainable)
    assert all(p.requires_grad for p in adapter.trainable_parameters())
    after = {k: v for k, v in adapter.net.state_dict().items() if "lora_" not in k}
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)         # weights and BN statistics
    assert any(not torch.equal(lora_before[k], v) for k, v in adapter.state().items())
    assert record["steps"] == 4 and record["loss_curve"][-1][0] == 4 and record["n_planes"] == 3


def test_it_merges_into_the_base_weights_exactly(tiny_base, sample):
    adapter = ModelAdapter(tiny_base, AdapterParams(rank=2, alpha=4.0))
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.normal_(0, 0.1)
    merged = adapter.merged_network()
    assert not any("lora" in k for k in merged.state_dict())
    with torch.no_grad():
        out = merged(_input(sample))[0]
    torch.testing.assert_close(out, adapter.forward(_input(sample)), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(out, _base_net(tiny_base)(_input(sample))[0], atol=1e-3)


def test_its_loss_is_cellposes_where_every_weight_is_one():
    from cellpose.train import _loss_fn_seg

    from segmentation.core.adapter.model import _weighted_loss

    rng = np.random.default_rng(0)
    out = torch.from_numpy(rng.normal(size=(2, 3, 16, 16)).astype(np.float32))
    lbl = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    lbl[:, 0] = rng.random((2, 16, 16)) > 0.5
    target = np.concatenate([lbl[:, :1], np.ones((2, 1, 16, 16), np.float32), lbl[:, 1:]], axis=1)
    expected = _loss_fn_seg(lbl, out, torch.device("cpu"))
    torch.testing.assert_close(_weighted_loss(out, torch.from_numpy(target)), expected)


def test_it_saves_a_small_file_and_loads_it_back(tiny_base, sample, tmp_path):
    adapter = ModelAdapter(tiny_base)
    adapter.train(_examples(sample), FAST)
    info = adapter.save(tmp_path / "a.pt", correction_ids=[3, 1, 2], metadata={"user": "ivy"})
    assert info["bytes"] == (tmp_path / "a.pt").stat().st_size and info["bytes"] < info["base_bytes"]
    assert info["size_ratio"] == round(info["bytes"] / info["base_bytes"], 4)
    assert len(info["sha256"]) == 64 and info["n_parameters"] == adapter.n_parameters

    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    assert payload["base"]["model"] == tiny_base and payload["base"]["sha256"] == adapter.base.sha256
    assert payload["correction_ids"] == [3, 1, 2] and payload["metadata"] == {"user": "ivy"}
    assert payload["rank"] == 4 and payload["layers"] == adapter.layer_names
    assert payload["training"]["params"] == FAST.to_dict() and payload["weights_sha256"] == info["weights_sha256"]

    loaded = ModelAdapter.load(tmp_path / "a.pt")
    assert _lora_state_equal(loaded, adapter)
    torch.testing.assert_close(loaded.forward(_input(sample)), adapter.forward(_input(sample)))


def test_it_resumes_from_a_checkpoint_as_if_never_stopped(tiny_base, sample, tmp_path):
    examples = _examples(sample)
    straight = ModelAdapter(tiny_base)
    straight.train(examples, FAST)

    class Cancelled(Exception):
        pass

    def cancel_at_3(fraction, message, metrics):
        assert {"step", "steps", "loss", "loss_avg", "lr"} <= metrics.keys()
        if metrics["step"] == 3:
            raise Cancelled

    checkpoint = tmp_path / "run.ckpt"
    stopped = ModelAdapter(tiny_base)
    with pytest.raises(Cancelled):
        stopped.train(examples, FAST, progress=cancel_at_3, checkpoint_path=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["step"] == 3       # saved on cancellation

    resumed = ModelAdapter(tiny_base)
    steps = []
    record = resumed.train(examples, FAST, resume_from=checkpoint,
                           progress=lambda f, m, metrics: steps.append(metrics["step"]))
    assert steps == [4] and record["resumed_from_step"] == 3
    assert _lora_state_equal(resumed, straight)


def test_it_refuses_a_checkpoint_of_another_training(tiny_base, sample, tmp_path):
    adapter = ModelAdapter(tiny_base)
    adapter.train(_examples(sample), FAST, checkpoint_path=tmp_path / "run.ckpt")
    with pytest.raises(InvalidParameterError, match="another training"):
        ModelAdapter(tiny_base).train(_examples(sample, n=2), FAST, resume_from=tmp_path / "run.ckpt")


def test_training_leaves_the_global_random_state_alone(tiny_base, sample):
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    ModelAdapter(tiny_base).train(_examples(sample), FAST)
    assert np.random.rand() == expected


# --- examples ---------------------------------------------------------------------------------


def test_a_correction_example_weighs_the_reviewed_zone_only(sample):
    image, labels = sample
    k = int(np.unique(labels)[1])
    mask = labels == k
    ex = correction_example(image, mask, np.zeros(mask.shape, np.uint8), context_labels=labels, zone_margin=2,
                            context_weight=0.0)
    assert not (ex.labels[mask]).any()                        # deleted: background where the nucleus was
    assert ex.weight[mask].min() == 1 and ex.weight.max() == 1
    assert ex.weight[~mask].sum() > 0 and ex.weight.mean() < 0.5
    other = (labels > 0) & ~mask & (ex.weight == 0)
    assert other.any()
    np.testing.assert_array_equal(ex.labels[other], labels[other])   # neighbours keep their ids
    zone = ex.weight == 1
    anchored = correction_example(image, mask, np.zeros(mask.shape, np.uint8), context_labels=labels, zone_margin=2)
    assert set(np.unique(anchored.weight[~zone]).tolist()) == {0.25}
    without_context = correction_example(image, mask, np.zeros(mask.shape, np.uint8), zone_margin=2)
    assert set(np.unique(without_context.weight[~zone]).tolist()) == {0.0}


@pytest.mark.parametrize("anisotropy, planes", [(None, 3), (2.0, None)])
def test_a_3d_example_gives_its_xy_planes_and_with_anisotropy_zy_zx_ones(anisotropy, planes):
    from segmentation.core.adapter.data import example_planes

    vol = np.zeros((5, 20, 24), np.float32)
    labels = np.zeros(vol.shape, np.uint8)
    labels[1:4, 5:12, 6:14] = 1
    weight = np.zeros(vol.shape, np.float32)
    weight[1:4] = 1
    found = example_planes(TrainingExample(vol, labels, weight, anisotropy=anisotropy))
    if planes is not None:
        assert len(found) == planes and all(p[0].shape == (20, 24) for p in found)
    else:
        shapes = [p[0].shape for p in found]
        assert shapes.count((20, 24)) == 3 and (10, 24) in shapes and (10, 20) in shapes


@pytest.mark.parametrize("make, message", [
    (lambda: TrainingExample(np.zeros((16, 16)), np.zeros((16, 15), np.uint8)), "differ in shape"),
    (lambda: TrainingExample(np.zeros((16, 16)), np.zeros((16, 16), np.uint8), np.full((16, 16), 2.0)), r"\[0, 1\]"),
    (lambda: TrainingExample(np.full((16, 16), np.nan), np.zeros((16, 16), np.uint8)), "NaN"),
    (lambda: correction_example(np.zeros((16, 16)), np.zeros((16, 16), bool), np.zeros((16, 12), bool)),
     "share one shape"),
    (lambda: correction_example(np.zeros((16, 16)), np.zeros((16, 16), bool), np.zeros((16, 16), bool)), "empty"),
])
def test_it_refuses_bad_examples(make, message):
    with pytest.raises(InvalidInputError, match=message):
        make()


def test_it_refuses_to_train_on_nothing(tiny_base):
    adapter = ModelAdapter(tiny_base)
    with pytest.raises(InvalidInputError, match="no training examples"):
        adapter.train([], FAST)
    with pytest.raises(InvalidInputError, match="positive weight"):
        adapter.train([TrainingExample(np.zeros((16, 16)), np.zeros((16, 16), np.uint8), np.zeros((16, 16)))], FAST)


@pytest.mark.parametrize("cls, data", [
    (AdapterParams, {"rank": 0}), (AdapterParams, {"alpha": -1.0}), (AdapterParams, {"targets": "*"}),
    (AdapterTrainingParams, {"steps": 0}), (AdapterTrainingParams, {"crop_size": 100}),
    (AdapterTrainingParams, {"learning_rate": 0.0}), (AdapterTrainingParams, {"colour": 1}),
    (RetrainingParams, {"holdout_fraction": 0.9}), (RetrainingParams, {"training": {"steps": -1}}),
])
def test_parameters_validate_themselves(cls, data):
    with pytest.raises(InvalidParameterError):
        cls.from_dict(data)


def test_parameters_round_trip_through_dicts():
    params = RetrainingParams(base_model="x.pt", adapter=AdapterParams(rank=2, targets=("upsample.*",)),
                              training={"steps": 12})
    assert RetrainingParams.from_dict(json.loads(json.dumps(params.to_dict()))) == params
    assert params.training.steps == 12 and params.adapter.targets == ("upsample.*",)


def test_it_refuses_targets_that_match_no_layer(tiny_base):
    with pytest.raises(InvalidParameterError, match="no Conv2d layer"):
        ModelAdapter(tiny_base, AdapterParams(targets=("nothing.*",)))


# --- files as model names ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter_file(tiny_base, sample, tmp_path_factory):
    adapter = ModelAdapter(tiny_base)
    adapter.train(_examples(sample), FAST)
    path = tmp_path_factory.mktemp("adapter") / "tiny.lora.pt"
    adapter.save(path)
    return str(path), adapter


def test_an_adapter_file_is_a_model_name_for_the_engine(adapter_file, sample):
    path, adapter = adapter_file
    loaded = load_model(path)
    assert loaded.kind == "adapter" and loaded.name == "tiny.lora"
    assert loaded.describe()["base"]["sha256"] == adapter.base.sha256
    net = loaded.cellpose_model.net
    with torch.no_grad():
        mkldnn, net.mkldnn = net.mkldnn, False
        out = net(_input(sample))[0]
        net.mkldnn = mkldnn
    torch.testing.assert_close(out, adapter.forward(_input(sample)), atol=1e-2, rtol=1e-2)  # float16 base

    image = synthetic.generate_2d((48, 48), seed=1, diameter=12).image
    result = SegmentationEngine().segment(image, SegmentationParams(model_name=path, diameter=12))
    assert result.labels.shape == image.shape and result.info["model"]["kind"] == "adapter"
    assert result.info["model"]["base"]["name"] == "tiny"
    base = load_model(adapter.base_model)
    assert base.kind == "file" and base.cellpose_model is not loaded.cellpose_model   # the base is untouched


def test_it_refuses_a_damaged_adapter_file(adapter_file, tmp_path):
    path, _ = adapter_file
    payload = torch.load(path, weights_only=True)
    key = sorted(payload["state"])[0]
    payload["state"][key] = payload["state"][key] + 1
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelNotAvailableError, match="damaged"):
        load_model(str(tmp_path / "edited.pt"))
    (tmp_path / "cut.pt").write_bytes(open(path, "rb").read()[:500])
    with pytest.raises(ModelNotAvailableError, match="cannot read"):
        load_model(str(tmp_path / "cut.pt"))
    with pytest.raises(ModelNotAvailableError, match="not found"):
        ModelAdapter.load(tmp_path / "missing.pt")


def test_it_refuses_an_adapter_of_another_base_model(tiny_base, sample, tmp_path):
    base = _save_tiny(tmp_path / "base.pt", seed=0)
    adapter = ModelAdapter(base)
    adapter.save(tmp_path / "a.pt")
    _save_tiny(tmp_path / "base.pt", seed=1)                      # the base changes under the adapter
    with pytest.raises(ModelNotAvailableError, match="trained on base model"):
        load_model(str(tmp_path / "a.pt"))
    with pytest.raises(ModelNotAvailableError, match="trained on base model"):
        ModelAdapter.load(tmp_path / "a.pt")

    from segmentation.core.adapter_file import weights_sha256

    payload = torch.load(tmp_path / "a.pt", weights_only=True)   # names a base of another shape
    payload["base"].update(model=str(tmp_path / "wide.pt"), sha256=None)
    from cellpose.resnet_torch import CPnet

    from segmentation.core.training import save_weights

    save_weights(CPnet([2, 12, 16], 3, sz=3, mkldnn=False), tmp_path / "wide.pt", {})
    payload["weights_sha256"] = weights_sha256(payload["state"])
    torch.save(payload, tmp_path / "b.pt")
    with pytest.raises(ModelNotAvailableError, match="does not fit"):
        load_model(str(tmp_path / "b.pt"))


# --- retraining from recorded corrections -----------------------------------------------------


def _record_corrections(manager, sample, n):
    """Record ``n`` nuclei of the sample as added by hand, with the image and the labels around."""
    image, labels = sample
    raw = image * 1000 + 100                                       # camera counts, normalised by the tracker
    for k in [int(i) for i in np.unique(labels)[1:n + 1]]:
        mask = labels == k
        manager.record_correction("img", k, np.zeros_like(mask), mask, "add", {"diameter": 14},
                                  image=raw, context_labels=labels)


def test_the_tracker_keeps_a_normalised_image_crop(tmp_path, sample):
    image, labels = sample
    manager = ActiveLearningManager(tmp_path)
    _record_corrections(manager, sample, 1)
    record = manager.tracker.records()[0]
    crop = manager.tracker.load_image(record.id)
    assert isinstance(crop, ImageCrop) and crop.context_labels is not None
    for w, (a, b), n in zip(crop.window, record.bbox, record.shape, strict=True):
        assert w.start == max(a - 32, 0) and w.stop == min(b + 32, n)
    raw = image * 1000 + 100
    lo, hi = np.percentile(raw, [1, 99])
    np.testing.assert_allclose(crop.image, (raw[crop.window] - lo) / (hi - lo), atol=1e-5)
    (example,) = manager.training_examples()
    assert example.correction_id == record.id and example.diameter == 14


def test_trigger_retraining_trains_scores_and_logs_a_version(tmp_path, sample, tiny_base):
    manager = ActiveLearningManager(tmp_path, min_corrections_for_training=4)
    _record_corrections(manager, sample, 4)
    assert manager.should_retrain()
    params = RetrainingParams(base_model=tiny_base, training=FAST, holdout_fraction=0.5, min_holdout_corrections=2)
    seen = []
    result = manager.trigger_retraining(params, progress=lambda f, m, metrics: seen.append((f, metrics["stage"])))

    assert result["status"] == "completed" and result["adapter_path"].endswith(result["model_version"] + ".pt")
    assert load_model(result["adapter_path"]).kind == "adapter"
    assert sorted(result["correction_ids"] + result["held_out_ids"]) == [1, 2, 3, 4]
    metrics = result["metrics"]
    if result["held_out_ids"]:
        assert metrics["evaluated"] and {"ap50", "ap75", "splits", "merges"} <= metrics["candidate"].keys()
        assert result["promoted"] is metrics["better"]
    assert seen[-1] == (1.0, "done") and ("training" in {s for _, s in seen})
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)

    log = json.loads((tmp_path / "training.json").read_text())["trainings"]
    assert len(log) == 1 and log[0]["model_version"] == result["model_version"]
    meta = log[0]["metadata"]
    assert meta["correction_ids"] == result["correction_ids"] and meta["base"]["sha256"]
    assert meta["training"]["loss_curve"] and meta["params"]["training"]["steps"] == 4
    assert not manager.should_retrain() and not list((tmp_path / "adapters").glob("*.ckpt"))


def test_trigger_retraining_resumes_a_cancelled_run(tmp_path, sample, tiny_base):
    manager = ActiveLearningManager(tmp_path, min_corrections_for_training=1)
    _record_corrections(manager, sample, 2)
    params = RetrainingParams(base_model=tiny_base, training=FAST)

    def cancel(fraction, message, metrics):
        if metrics.get("step") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        manager.trigger_retraining(params, progress=cancel)
    assert manager.last_training() is None and len(list((tmp_path / "adapters").glob("*.ckpt"))) == 1
    result = manager.trigger_retraining(params)
    assert result["training"]["resumed_from_step"] == 2 and manager.last_training() is not None


def test_trigger_retraining_refuses_without_corrections_or_images(tmp_path, sample, tiny_base):
    manager = ActiveLearningManager(tmp_path)
    params = RetrainingParams(base_model=tiny_base, training=FAST)
    with pytest.raises(InvalidInputError, match="no corrections"):
        manager.trigger_retraining(params)
    mask = sample[1] == 1
    manager.record_correction("img", 1, mask, np.zeros_like(mask), "delete")
    with pytest.raises(InvalidInputError, match="no image"):
        manager.trigger_retraining(params)
    result = manager.trigger_retraining(params, image_provider=lambda record: sample[0])
    assert result["status"] == "completed" and not result["metrics"]["evaluated"]


def test_an_image_provider_may_show_more_than_the_recorded_region(tmp_path, sample):
    image, labels = sample
    k = int(np.unique(labels)[1])
    ys, xs = np.nonzero(labels == k)
    region = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))   # masks over the edit only
    manager = ActiveLearningManager(tmp_path)
    manager.record_correction("volume-1", k, labels[region] == k, np.zeros(labels[region].shape, bool), "delete")
    window = tuple(slice(max(s.start - 8, 0), s.stop + 8) for s in region)

    def provider(record):
        offset = tuple(w.start - s.start for w, s in zip(window, region, strict=True))    # negative: beyond the frame
        return ImageCrop(image[window], offset, context_labels=labels[window])

    (example,) = manager.training_examples(image_provider=provider)
    assert example.image.shape == image[window].shape
    assert (example.labels[labels[window] == k] == 0).all()                 # deleted: background now
    assert example.weight[labels[window] == k].min() == 1


def test_trigger_retraining_can_be_limited_to_some_corrections(tmp_path, sample, tiny_base):
    manager = ActiveLearningManager(tmp_path)
    _record_corrections(manager, sample, 3)
    params = RetrainingParams(base_model=tiny_base, training=FAST)
    result = manager.trigger_retraining(params, correction_ids=[1, 3])
    assert result["correction_ids"] == [1, 3] and manager.last_training()["last_correction_id"] == 3
    with pytest.raises(InvalidInputError, match="no correction record 9"):
        manager.trigger_retraining(params, correction_ids=[9])


def test_trigger_retraining_trains_on_every_correction_when_the_hash_holds_all_out(tmp_path, sample, tiny_base):
    # Corrections 1 and 4 both fall in a half hold-out: a version needs something to learn from,
    # so both are trained on and none is scored (the web app's training job runs the same code).
    manager = ActiveLearningManager(tmp_path)
    _record_corrections(manager, sample, 4)
    params = RetrainingParams(base_model=tiny_base, training=FAST, holdout_fraction=0.5, min_holdout_corrections=2)
    assert holdout_split([1, 2, 3, 4], params) == ([2, 3], [1, 4])
    result = manager.trigger_retraining(params, correction_ids=[1, 4])
    assert (result["correction_ids"], result["held_out_ids"]) == ([1, 4], [])
    assert not result["metrics"]["evaluated"] and "held out every correction" in result["metrics"]["reason"]
    assert result["promoted"] is None and result["training"]["n_examples"] == 2


# --- picking what to review -------------------------------------------------------------------


def test_select_for_review_takes_the_top_or_goes_round_the_images():
    from segmentation.core import UncertaintyEstimator, select_for_review

    rankings = {"bad": [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)], "ok": [(9, 0.65)], "good": [(5, 0.1)]}
    assert [(i, n) for i, n, _ in select_for_review(rankings, 3)] == [("bad", 1), ("bad", 2), ("bad", 3)]
    assert [(i, n) for i, n, _ in select_for_review(rankings, 4, strategy="round_robin")] == [
        ("bad", 1), ("ok", 9), ("good", 5), ("bad", 2)]
    assert [(i, n) for i, n, _ in select_for_review(rankings, 9, max_per_image=2)] == [
        ("bad", 1), ("bad", 2), ("ok", 9), ("good", 5)]
    labels = np.zeros((8, 8), np.int32)
    labels[1:4, 1:4] = 1
    labels[4:7, 2:7] = 2
    labels[5, 3:6] = 0
    table = UncertaintyEstimator().estimate(labels)
    assert [n for _, n, _ in select_for_review({"img": table}, 1)] == [2]
    assert select_for_review(rankings, 0) == [] and select_for_review({}, 3) == []


@pytest.mark.parametrize("kwargs", [{"n": -1}, {"n": 2, "strategy": "best"}, {"n": 2, "max_per_image": 0}])
def test_select_for_review_refuses_bad_arguments(kwargs):
    from segmentation.core import select_for_review

    with pytest.raises(InvalidParameterError):
        select_for_review({"a": [(1, 0.5)]}, **kwargs)


def test_select_for_review_explores_a_fraction_at_random():
    from segmentation.core import select_for_review

    rankings = {"a": [(k, 1 - k / 100) for k in range(1, 41)], "b": [(k, 0.2) for k in range(50, 90)]}
    picked = select_for_review(rankings, 10, explore=0.5, seed=3)
    assert [(i, n) for i, n, _ in picked[:5]] == [("a", k) for k in range(1, 6)]
    assert len(set((i, n) for i, n, _ in picked)) == 10 and not {("a", k) for k in range(1, 6)} & {
        (i, n) for i, n, _ in picked[5:]}
    assert picked == select_for_review(rankings, 10, explore=0.5, seed=3)
    assert len(select_for_review({"a": [(1, 0.5), (2, 0.4)]}, 5, explore=1.0, seed=0)) == 2
