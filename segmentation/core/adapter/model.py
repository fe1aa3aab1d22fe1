"""The adapter itself: :class:`ModelAdapter`, its parameters, its training loop and its files."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..adapter_file import ADAPTER_FORMAT, check_base_matches, read_adapter_file, weights_sha256
from ..errors import InvalidInputError, InvalidParameterError, ModelNotAvailableError
from ..modelzoo import file_sha256
from .data import as_examples, example_diameters, make_batch, prepare_planes
from .params import AdapterParams, AdapterTrainingParams

__all__ = ["AdapterParams", "AdapterTrainingParams", "ModelAdapter"]

_CHECKPOINT_FORMAT = "ezquant-adapter-checkpoint/1"

# progress(fraction, message, metrics); it may raise to cancel the training.
TrainingProgress = Callable[[float, str, dict[str, Any]], None]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _save_atomic(payload: Any, path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _json_copy(value: Any, name: str) -> Any:
    """A private, JSON-clean copy of ``value`` (what a file or a job's JSON field can hold)."""
    import json

    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be JSON-serialisable: {exc}") from None


class ModelAdapter:
    """A LoRA adapter on the Conv2d layers of a Cellpose network (CPnet), base weights frozen.

    Why our own low-rank layers and not ``peft``: peft's ``LoraConfig`` supports ``Conv2d``
    targets, but installing it pulls ``transformers``, ``accelerate``, ``huggingface_hub``,
    ``safetensors``, ``psutil`` and ``pyyaml`` into a project whose core needs none of them, for
    what is here ~60 lines (:mod:`segmentation.core.lora`): ``W + (alpha / rank) B A`` with ``A`` a k x k
    convolution to ``rank`` channels and ``B`` a 1 x 1 convolution back, ``B = 0`` at the start,
    mergeable into ``W`` exactly. It also keeps the file format ours: a dict of plain tensors
    with the metadata below, loadable with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    base_model : str or None
        What :func:`segmentation.core.load_model` accepts (``None`` = the default model, a
        Cellpose built-in name, a path to a model file); not an adapter file.
    params : AdapterParams, optional
    gpu : bool
        Train on a GPU when torch sees one.

    The base network is a private copy (the engine's cached one is never touched); its
    parameters have ``requires_grad = False`` and its batch-norm layers stay in evaluation mode
    (their running statistics are part of the base and are not updated).

    Examples
    --------
    Train, save, and segment with the base + adapter through the engine::

        adapter = ModelAdapter()                       # on ezq_nuclei_v1
        record = adapter.train(examples, AdapterTrainingParams(steps=150),
                               progress=report, checkpoint_path="run.ckpt")
        info = adapter.save("adapters/lab1.pt", correction_ids=[1, 2, 3])
        SegmentationEngine().segment(image, SegmentationParams(model_name="adapters/lab1.pt"))
    """

    def __init__(self, base_model: str | None = None, params: AdapterParams | None = None, *, gpu: bool = False):
        from .. import lora, modelzoo  # lora imports torch

        if params is not None and not isinstance(params, AdapterParams):
            raise InvalidParameterError(f"params must be AdapterParams, got {type(params).__name__}")
        self.params = params or AdapterParams()
        base = modelzoo.load_model(base_model, gpu=gpu, fresh=True)
        if base.kind == "adapter":
            raise InvalidParameterError(
                f"{base.name} is an adapter: adapters are trained on a base model, give the adapter's base instead")
        self.base = base
        # How the base is named in the adapter file: a name for shipped and built-in models,
        # the absolute path for a model file.
        self.base_model = base.name if base.kind in ("shipped", "cellpose-builtin") else str(base.path)
        net = base.cellpose_model.net
        net.mkldnn = False  # MKL-DNN tensors have no autograd; training runs on dense tensors
        net.float()
        net.eval()
        self.layer_names = lora.conv_layer_names(net, self.params.targets)
        if not self.layer_names:
            raise InvalidParameterError(f"no Conv2d layer of {base.name} matches targets {list(self.params.targets)}")
        self._layers = lora.inject(net, self.layer_names, self.params.rank, self.params.alpha, self.params.seed)
        self.net = net
        self.diam_mean = float(base.diam_mean)
        self.training: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return (f"ModelAdapter(base={self.base.name!r}, rank={self.params.rank}, alpha={self.params.alpha}, "
                f"layers={len(self.layer_names)})")

    # -- sizes --------------------------------------------------------------------------------

    def trainable_parameters(self) -> list[Any]:
        """The adapter's tensors (``A`` and ``B`` of every layer): all that training changes."""
        return [p for m in self._layers.values() for p in (m.lora_a.weight, m.lora_b.weight)]

    @property
    def n_parameters(self) -> int:
        """Number of adapter weights."""
        return sum(p.numel() for p in self.trainable_parameters())

    @property
    def n_base_parameters(self) -> int:
        """Number of weights of the frozen base network."""
        trainable = {id(p) for p in self.trainable_parameters()}
        return sum(p.numel() for p in self.net.parameters() if id(p) not in trainable)

    # -- running ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """``{"<layer>.lora_a": tensor, "<layer>.lora_b": tensor}`` (CPU copies)."""
        from .. import lora

        return lora.adapter_state(self._layers)

    def load_state(self, state: dict[str, Any]) -> None:
        """Set the adapter weights from :meth:`state`'s form."""
        from .. import lora

        lora.load_adapter_state(self._layers, state)

    def forward(self, x: Any) -> Any:
        """Run base + adapter (unmerged) on a (B, 2, Y, X) tensor; returns the (B, 3, Y, X) output."""
        import torch

        with torch.no_grad():
            return self.net(x)[0]

    def merged_network(self) -> Any:
        """A copy of the base network with the adapter added into its weights (plain Conv2d)."""
        import copy

        import torch

        from .. import lora

        net = copy.deepcopy(self.net)
        with torch.no_grad():
            for name in self.layer_names:
                parent, leaf = lora.parent_of(net, name)
                module = getattr(parent, leaf)
                module.base.weight.add_(module.delta_weight())
                setattr(parent, leaf, module.base)
        return net

    # -- training -----------------------------------------------------------------------------

    def train(self, examples: Any, params: AdapterTrainingParams | None = None, *,
              progress: TrainingProgress | None = None, checkpoint_path: str | os.PathLike[str] | None = None,
              resume_from: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Fine-tune the adapter on ``examples``; the base stays frozen.

        Parameters
        ----------
        examples : list of TrainingExample or ``(image, labels[, weight])`` tuples
            2D or 3D crops (see :class:`TrainingExample` for the normalisation and weights).
        params : AdapterTrainingParams, optional
        progress : callable, optional
            Called after every step as ``progress(fraction, message, metrics)`` with
            ``metrics = {"step", "steps", "loss", "loss_avg", "lr"}``. An exception it raises
            (a cancelled job) stops the training; with ``checkpoint_path`` the state is saved
            first, so ``resume_from`` continues from that step.
        checkpoint_path : path, optional
            Where to save the training state every ``params.checkpoint_every`` steps (and on
            cancellation); written atomically.
        resume_from : path, optional
            A checkpoint of the same adapter, parameters and examples to continue from. The
            batches and augmentations of a step depend only on the seed and the step number,
            so a resumed training ends with the same weights as an uninterrupted one.

        Returns
        -------
        dict
            The training record: ``params``, ``steps``, ``loss_curve`` (``[step, mean loss]``
            every few steps), ``final_loss``, ``n_examples``, ``n_planes``, ``seconds``,
            ``resumed_from_step``, ``data_sha256``. Also kept as :attr:`training`.

        Raises
        ------
        InvalidInputError
            No examples, bad shapes, or no plane with a positive weight.
        InvalidParameterError
            A checkpoint of another adapter, other parameters or other examples.
        """
        import torch

        if params is not None and not isinstance(params, AdapterTrainingParams):
            raise InvalidParameterError(f"params must be AdapterTrainingParams, got {type(params).__name__}")
        params = params or AdapterTrainingParams()
        examples, planes, data_sha = self._training_planes(examples)
        optimizer = torch.optim.AdamW(self.trainable_parameters(), lr=params.learning_rate,
                                      weight_decay=params.weight_decay)
        curve: list[list[float]] = []
        start = 0
        if resume_from is not None:
            start, curve = self._resume(Path(resume_from), optimizer, params, data_sha)
        checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
        report = progress or (lambda fraction, message, metrics: None)

        t0 = time.perf_counter()
        window: list[float] = []
        log_every = max(1, params.steps // 50)
        self.net.eval()  # batch norm keeps the base's running statistics
        for step in range(start, params.steps):
            lr = params.learning_rate_at(step)
            value = self._train_step(optimizer, planes, params, step, lr)
            window.append(value)
            if (step + 1) % log_every == 0 or step + 1 == params.steps:
                curve.append([step + 1, round(float(np.mean(window)), 5)])
                window = []
            metrics = {"step": step + 1, "steps": params.steps, "loss": value,
                       "loss_avg": curve[-1][1] if curve else value, "lr": lr}
            if checkpoint is not None and (step + 1) % params.checkpoint_every == 0 and step + 1 < params.steps:
                self._save_checkpoint(checkpoint, optimizer, params, data_sha, step + 1, curve)
            try:
                report((step + 1) / params.steps, f"training step {step + 1}/{params.steps}", metrics)
            except BaseException:
                if checkpoint is not None:
                    self._save_checkpoint(checkpoint, optimizer, params, data_sha, step + 1, curve)
                raise
        self.training = {
            "params": params.to_dict(), "steps": params.steps, "loss_curve": curve,
            "final_loss": curve[-1][1] if curve else None, "n_examples": len(examples), "n_planes": len(planes),
            "seconds": round(time.perf_counter() - t0, 2), "resumed_from_step": start if resume_from else None,
            "data_sha256": data_sha, "finished": _utc_now(),
        }
        return self.training

    def _training_planes(self, examples: Any) -> tuple[list, list, str]:
        """The examples checked, their planes ready for batches (each at its diameter, else the
        examples' median) and the hash that ties a checkpoint to them."""
        examples = as_examples(examples)
        diameters = example_diameters(examples)
        default_diameter = float(np.median(diameters)) if diameters else self.diam_mean
        planes = prepare_planes(examples, default_diameter)
        if not planes:
            raise InvalidInputError("no example has a pixel with positive weight: nothing to learn from")
        data_sha = hashlib.sha256("".join(ex.fingerprint() for ex in examples).encode()).hexdigest()
        return examples, planes, data_sha

    def _train_step(self, optimizer: Any, planes: list, params: AdapterTrainingParams, step: int,
                    lr: float) -> float:
        """One optimiser step at learning rate ``lr``; its loss. The batch and its augmentations
        depend only on the seed and ``step`` (what makes a resumed training end the same)."""
        import torch

        for group in optimizer.param_groups:
            group["lr"] = lr
        rng = np.random.default_rng([params.seed, step])
        indices = rng.integers(0, len(planes), size=params.batch_size)
        x, y = make_batch(planes, indices, diam_mean=self.diam_mean, crop_size=params.crop_size,
                          scale_range=params.scale_range, seed=int(rng.integers(0, 2 ** 32)))
        device = next(self.net.parameters()).device
        loss = _weighted_loss(self.net(torch.from_numpy(x).to(device))[0], torch.from_numpy(y).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    def _checkpoint_identity(self, params: AdapterTrainingParams, data_sha: str) -> dict[str, Any]:
        return {"base_sha256": self.base.sha256, "adapter": self.params.to_dict(), "layers": self.layer_names,
                "training": params.to_dict(), "data_sha256": data_sha}

    def _save_checkpoint(self, path: Path, optimizer: Any, params: AdapterTrainingParams, data_sha: str,
                         step: int, curve: list) -> None:
        payload = {"format": _CHECKPOINT_FORMAT, "step": step, "loss_curve": curve, "state": self.state(),
                   "optimizer": optimizer.state_dict(), **self._checkpoint_identity(params, data_sha)}
        _save_atomic(payload, path)

    def _resume(self, path: Path, optimizer: Any, params: AdapterTrainingParams, data_sha: str) -> tuple[int, list]:
        import torch

        if not path.is_file():
            raise InvalidParameterError(f"checkpoint not found: {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InvalidParameterError(f"cannot read checkpoint {path.name}: {exc.__class__.__name__}") from exc
        if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
            raise InvalidParameterError(f"{path.name} is not an adapter training checkpoint")
        identity = self._checkpoint_identity(params, data_sha)
        differs = [k for k, v in identity.items() if payload.get(k) != v]
        if differs:
            raise InvalidParameterError(
                f"checkpoint {path.name} belongs to another training (its {', '.join(differs)} differ): "
                f"start afresh without resume_from")
        self.load_state(payload["state"])
        optimizer.load_state_dict(payload["optimizer"])
        return int(payload["step"]), [list(p) for p in payload["loss_curve"]]

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, correction_ids: Any = (), metadata: dict[str, Any] | None = None
             ) -> dict[str, Any]:
        """Write the adapter file: the low-rank weights and what identifies them.

        The file holds ``base`` (``model``: the name or path it loads by, ``name``, ``sha256``,
        ``nbase``, ``diam_mean``), ``rank``, ``alpha``, ``layers`` (the adapted layers),
        ``params``, ``training`` (the last training record), ``correction_ids``, ``metadata``,
        ``created`` and ``weights_sha256`` (of the weights themselves: a damaged file is refused
        on load). Written atomically.

        Returns
        -------
        dict
            ``path``, ``bytes``, ``sha256`` (of the file), ``weights_sha256``, ``n_parameters``,
            ``base_bytes`` and ``base_parameters``, ``size_ratio`` (file bytes over the base
            file's).
        """
        path = Path(path)
        state = self.state()
        weights_sha = weights_sha256(state)
        payload = {
            "format": ADAPTER_FORMAT,
            "base": {"model": self.base_model, "name": self.base.name, "kind": self.base.kind,
                     "sha256": self.base.sha256, "version": self.base.version,
                     "nbase": [int(n) for n in getattr(self.net, "nbase", [])], "diam_mean": self.diam_mean},
            "rank": self.params.rank, "alpha": self.params.alpha, "layers": list(self.layer_names),
            "params": self.params.to_dict(), "training": _json_copy(self.training or {}, "training"),
            "correction_ids": [int(i) for i in correction_ids], "metadata": _json_copy(metadata or {}, "metadata"),
            "created": _utc_now(), "weights_sha256": weights_sha, "state": state,
        }
        _save_atomic(payload, path)
        size = path.stat().st_size
        base_bytes = Path(self.base.path).stat().st_size if self.base.path and Path(self.base.path).is_file() else None
        return {"path": str(path), "bytes": size, "sha256": file_sha256(path), "weights_sha256": weights_sha,
                "n_parameters": self.n_parameters, "base_parameters": self.n_base_parameters,
                "base_bytes": base_bytes, "size_ratio": round(size / base_bytes, 4) if base_bytes else None}

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, gpu: bool = False) -> "ModelAdapter":
        """The adapter saved at ``path``, on its base model (to train further or inspect).

        Raises
        ------
        ModelNotAvailableError
            Missing, damaged or non-adapter file; the base model missing, or changed since
            the adapter was trained (another SHA-256).
        """
        payload = read_adapter_file(path)
        params = AdapterParams(rank=int(payload["rank"]), alpha=float(payload["alpha"]),
                               targets=tuple(payload["layers"]), seed=int(payload.get("params", {}).get("seed", 0)))
        adapter = cls(payload["base"]["model"], params, gpu=gpu)
        check_base_matches(payload, adapter.base.sha256, Path(path).name)
        if adapter.layer_names != list(payload["layers"]):
            raise ModelNotAvailableError(f"adapter {Path(path).name} names layers its base network does not have")
        try:
            adapter.load_state(payload["state"])
        except InvalidParameterError as exc:
            raise ModelNotAvailableError(f"adapter {Path(path).name} does not fit its base network: {exc}") from exc
        adapter.training = payload.get("training") or None
        return adapter


def _weighted_loss(out: Any, target: Any) -> Any:
    """Cellpose's loss with a per-pixel weight.

    ``out``: (B, 3, Y, X) network output (flow y, flow x, cell-probability logit);
    ``target``: (B, 4, Y, X) cell probability (0/1), weight, flow y, flow x. As
    ``cellpose.train._loss_fn_seg``: MSE between the flows and five times the unit flows, halved,
    plus binary cross-entropy on the cell probability -- here as means weighted by the weight
    map (equal to Cellpose's loss where every weight is 1).
    """
    import torch.nn.functional as F

    weight = target[:, 1]
    total = weight.sum().clamp_min(1e-6)
    flow_err = ((out[:, :2] - 5.0 * target[:, 2:]) ** 2).sum(dim=1)          # (B, Y, X)
    mse = (weight * flow_err).sum() / (2.0 * total) / 2.0
    bce = F.binary_cross_entropy_with_logits(out[:, 2], (target[:, 0] > 0.5).float(), reduction="none")
    return mse + (weight * bce).sum() / total
