"""Find and load segmentation models: the shipped default, Cellpose built-ins, model files.

Names resolve in this order:

1. ``None``, ``"default"`` or the name of a model shipped in ``segmentation/core/models``
   (``ezq_nuclei_v1``, ``ezq_nuclei_v2``, ``ezq_nuclei_v3``): the project's own weights, always available offline
   (the engine segments a z-stack with ``DEFAULT_MODEL_3D`` when no model is named);
2. a path to a file: an EZQuant weights file (``.pt`` with a ``format`` entry), any Cellpose
   model file (a CPnet ``state_dict`` as ``cellpose.train`` saves it), or an EZQuant adapter
   file (:class:`segmentation.core.ModelAdapter`): its base model is loaded by the name the
   file records, checked against the SHA-256 it records, and the adapter merged into a private
   copy of the base weights (``kind="adapter"``, ``describe()["base"]`` names the base);
3. a Cellpose built-in name (``nuclei``, ``cyto3``, ...): loaded through Cellpose, which
   downloads the weights into ``CELLPOSE_LOCAL_MODELS_PATH`` (default ``~/.cellpose/models``)
   the first time; offline, and without that file, this fails with one clear message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapter_file import ADAPTER_FORMAT, check_adapter_payload, check_base_matches
from .errors import ModelNotAvailableError, SegmentationError

__all__ = ["DEFAULT_MODEL", "DEFAULT_MODEL_3D", "SHIPPED_MODELS_DIR", "LoadedModel", "default_model_for", "load_model",
           "resolve_model", "shipped_models"]

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "ezq_nuclei_v1"
#: The shipped model a z-stack is segmented with when no model is named: ``ezq_nuclei_v2``'s
#: network for the xy planes and one of its own, trained on zy and zx sections of generated
#: stacks, for true3d's orthogonal views (see the model card). 2D images keep
#: :data:`DEFAULT_MODEL`, which scores better on blurred 2D images.
DEFAULT_MODEL_3D = "ezq_nuclei_v3"


def default_model_for(image_shape: tuple[int, ...]) -> str:
    """The shipped default for an image of this shape: :data:`DEFAULT_MODEL_3D` for a stack of
    two or more planes, :data:`DEFAULT_MODEL` otherwise."""
    is_stack = len(image_shape) == 3 and image_shape[0] > 1
    return DEFAULT_MODEL_3D if is_stack else DEFAULT_MODEL
_FORMAT = "ezquant-cpnet/1"


@dataclass(frozen=True)
class ModelRef:
    """Where a model name points, before anything is loaded."""

    name: str
    kind: str            # "shipped" | "file" | "cellpose-builtin"
    path: Path | None    # None for a built-in whose weights Cellpose fetches


@dataclass
class LoadedModel:
    """A ready Cellpose model with what identifies it.

    Attributes
    ----------
    cellpose_model : ``cellpose.models.CellposeModel`` ready for ``eval``.
    name, kind : as resolved; ``version`` is the card's version for shipped models, else the
        first 12 hex digits of the weights' SHA-256.
    sha256 : hash of the weights file (``None`` if Cellpose keeps it somewhere unknown).
    diam_mean : the diameter the network sees objects at, in pixels.
    base : for an adapter (``kind="adapter"``), ``describe()`` of its base model; else ``None``.

    ``describe()["ortho_network"]`` says whether the model has a network of its own for
    ``true3d``'s zy and zx views (an EZQuant file's ``ortho_state_dict``).
    """

    cellpose_model: Any
    name: str
    kind: str
    path: str | None
    sha256: str | None
    version: str
    diam_mean: float
    base: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "version": self.version, "sha256": self.sha256,
               "path": self.path, "diam_mean": self.diam_mean,
               "ortho_network": getattr(self.cellpose_model, "net_ortho", None) is not None}
        if self.base is not None:
            out["base"] = self.base
        return out


def shipped_models() -> list[str]:
    """Names of the weights files that ship with the project."""
    return sorted(p.stem for p in SHIPPED_MODELS_DIR.glob("*.pt"))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read a MiB at a time (weights files are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cellpose_builtin_names() -> list[str]:
    from cellpose import models  # lazy: cellpose pulls in torch

    return list(models.MODEL_NAMES)


def resolve_model(model_name: str | None) -> ModelRef:
    """Say where ``model_name`` points, or raise :class:`ModelNotAvailableError`."""
    name = DEFAULT_MODEL if model_name in (None, "", "default") else str(model_name)
    shipped = SHIPPED_MODELS_DIR / f"{name}.pt"
    if shipped.is_file():
        return ModelRef(name, "shipped", shipped)
    if name == DEFAULT_MODEL:
        raise ModelNotAvailableError(
            f"the default model's weights are missing ({shipped}); restore them from git or retrain "
            f"with: python -m segmentation.core.training --out {shipped}")
    path = Path(name).expanduser()
    if path.suffix or os.sep in name:
        if path.is_file():
            return ModelRef(path.name, "file", path.resolve())
        raise ModelNotAvailableError(f"model file not found: {name}")
    if name in _cellpose_builtin_names():
        return ModelRef(name, "cellpose-builtin", None)
    raise ModelNotAvailableError(
        f"unknown model {name!r}: use {DEFAULT_MODEL!r} (the default), a Cellpose built-in name "
        f"or a path to a model file")


def _builtin_cached(name: str) -> bool:
    """Whether Cellpose already has the weights of built-in ``name`` on disk."""
    from cellpose import models

    # The file names cellpose.models.model_path gives (calling it would start the download).
    basename = f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name
    return (models.MODEL_DIR / basename).is_file()


def _card_version(path: Path) -> str | None:
    card = path.with_suffix(".json")
    if card.is_file():
        try:
            return str(json.loads(card.read_text())["version"])
        except (ValueError, KeyError) as exc:
            raise ModelNotAvailableError(f"model card {card} is unreadable: {exc}") from exc
    return None


_STYLE_WIDTH = 256  # cellpose.core.run_net allocates style vectors of this width


def _narrow_cpnet_class() -> type:
    """CPnet whose style vector is zero-padded to the width Cellpose's inference expects.

    ``cellpose.core.run_net`` stores each tile's style in a 256-wide array, the width of the
    standard network's last level. A narrower CPnet (last level 128) computes a shorter style;
    padding it with zeros changes nothing the flows depend on (the style enters the decoder
    before it is returned). Cellpose uses the style only for its size model, which we do not.
    """
    import torch.nn.functional as F
    from cellpose.resnet_torch import CPnet

    class NarrowCPnet(CPnet):
        def forward(self, data):
            y, style, downsampled = super().forward(data)
            if style.shape[-1] < _STYLE_WIDTH:
                style = F.pad(style, (0, _STYLE_WIDTH - style.shape[-1]))
            return y, style, downsampled

    return NarrowCPnet


def _load_ezquant_file(path: Path, payload: dict[str, Any], device: Any) -> Any:
    from cellpose import models

    nbase = [int(n) for n in payload["nbase"]]
    # Built without weights, which cellpose announces with a misleading "no model weights
    # loaded" line: the weights are loaded just below. Quiet that one logger meanwhile.
    cellpose_log = logging.getLogger("cellpose.models")
    level = cellpose_log.level
    cellpose_log.setLevel(logging.WARNING)
    try:
        model = models.CellposeModel(gpu=device.type != "cpu", device=device, pretrained_model=False,
                                     diam_mean=float(payload["diam_mean"]), nchan=nbase[0])
    finally:
        cellpose_log.setLevel(level)
    def network(state_dict: dict[str, Any]) -> Any:
        net = _narrow_cpnet_class()(nbase, 3, sz=3, mkldnn=model.mkldnn, max_pool=True,
                                    diam_mean=float(payload["diam_mean"]))
        net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()})
        return net.to(device).eval()

    model.net = network(payload["state_dict"])
    # A network of its own for true3d's zy and zx views (Cellpose's net_ortho), where the file
    # has one; else Cellpose runs model.net on all three views.
    ortho = payload.get("ortho_state_dict")
    model.net_ortho = network(ortho) if ortho is not None else None
    model.nbase = nbase
    model.diam_mean = float(payload["diam_mean"])
    model.diam_labels = float(payload["diam_labels"])
    model.pretrained_model = str(path)
    return model


def _device(gpu: bool) -> Any:
    import torch

    if gpu and torch.cuda.is_available():
        return torch.device("cuda")
    if gpu and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_cache: dict[tuple[str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()


def load_model(model_name: str | None = None, *, gpu: bool = False, fresh: bool = False) -> LoadedModel:
    """Load (once per process) the model ``model_name`` resolves to.

    ``fresh=True`` loads a private copy instead, neither taken from nor put in the cache: for
    code that changes the network (adapter training). The shared copy must stay unchanged --
    and Cellpose's CPU inference converts its layers to MKL-DNN in place on the first run.

    Raises
    ------
    ModelNotAvailableError
        unknown name, missing or unreadable file, a built-in that cannot be fetched, or an
        adapter whose base model is missing or changed.
    """
    ref = resolve_model(model_name)
    device = _device(gpu)
    if fresh:
        return _load(ref, device)
    key = (ref.kind, str(ref.path or ref.name), device.type)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        loaded = _load(ref, device)
        _cache[key] = loaded
        return loaded


def _load(ref: ModelRef, device: Any) -> LoadedModel:
    # torch and cellpose are imported here, not at module level: the web process imports the
    # core for its parameter objects and must start without paying for torch.
    import torch
    from cellpose import models

    if ref.kind == "cellpose-builtin":
        if os.environ.get("EZQUANT_OFFLINE", "").lower() in ("1", "true", "yes") and not _builtin_cached(ref.name):
            raise ModelNotAvailableError(
                f"Cellpose model {ref.name!r} is not on this machine and EZQUANT_OFFLINE forbids downloading "
                f"it; use the offline default {DEFAULT_MODEL!r}, or put the weights in CELLPOSE_LOCAL_MODELS_PATH")
        try:
            model = models.CellposeModel(gpu=device.type != "cpu", device=device, model_type=ref.name)
        except OSError as exc:  # URLError and friends: no network, no cached file
            raise ModelNotAvailableError(
                f"Cellpose model {ref.name!r} is not on this machine and could not be downloaded "
                f"({exc.__class__.__name__}); use the offline default {DEFAULT_MODEL!r}, or put the "
                f"weights in CELLPOSE_LOCAL_MODELS_PATH") from exc
        path = Path(model.pretrained_model) if isinstance(model.pretrained_model, (str, Path)) else None
        sha = file_sha256(path) if path and path.is_file() else None
        return LoadedModel(model, ref.name, ref.kind, str(path) if path else None, sha,
                           sha[:12] if sha else "builtin", float(model.diam_mean))

    assert ref.path is not None
    sha = file_sha256(ref.path)
    try:
        payload = torch.load(ref.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise ModelNotAvailableError(f"cannot read model file {ref.path.name}: {exc.__class__.__name__}") from exc
    if isinstance(payload, dict) and payload.get("format") == ADAPTER_FORMAT:
        return _load_adapter(ref.path, payload, sha, device)
    try:
        if isinstance(payload, dict) and payload.get("format") == _FORMAT:
            model = _load_ezquant_file(ref.path, payload, device)
        elif isinstance(payload, dict) and any(k.startswith("downsample.") for k in payload):
            model = models.CellposeModel(gpu=device.type != "cpu", device=device, pretrained_model=str(ref.path))
        else:
            raise ModelNotAvailableError(f"{ref.path.name} is neither an EZQuant nor a Cellpose model file")
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelNotAvailableError(f"model file {ref.path.name} does not fit a CPnet: {exc}".splitlines()[0]) from exc
    version = (_card_version(ref.path) if ref.kind == "shipped" else None) or sha[:12]
    return LoadedModel(model, ref.name if ref.kind == "shipped" else ref.path.stem, ref.kind, str(ref.path),
                       sha, version, float(model.diam_mean))


def _load_adapter(path: Path, payload: dict[str, Any], sha: str, device: Any) -> LoadedModel:
    """Base model + adapter, merged into a private copy of the base weights."""
    from . import lora  # imports torch

    payload = check_adapter_payload(payload, path.name)
    base_name = payload["base"]["model"]
    try:
        base_ref = resolve_model(base_name)
    except ModelNotAvailableError as exc:
        raise ModelNotAvailableError(f"the base model of adapter {path.name} is not available: {exc}") from exc
    base = _load(base_ref, device)  # uncached: its weights are changed below
    if base.kind == "adapter":
        raise ModelNotAvailableError(f"adapter {path.name} names another adapter as its base")
    check_base_matches(payload, base.sha256, path.name)
    layers = list(payload["layers"])
    try:
        lora.merge_into(base.cellpose_model.net, payload["state"], layers,
                        float(payload["alpha"]) / float(payload["rank"]))
    except (KeyError, AttributeError, SegmentationError) as exc:
        raise ModelNotAvailableError(f"adapter {path.name} does not fit its base model {base.name}: {exc}") from exc
    return LoadedModel(base.cellpose_model, path.stem, "adapter", str(path), sha, sha[:12], base.diam_mean,
                       base=base.describe())
