"""The adapter file: what :meth:`ModelAdapter.save` writes and :func:`modelzoo.load_model` reads.

An adapter file is a ``torch.save`` of a dict of plain tensors and JSON-able metadata, loadable
with ``torch.load(weights_only=True)``:

``format``
    :data:`ADAPTER_FORMAT` (``"ezquant-adapter/1"``).
``base``
    The base model it was trained on: ``model`` (the name to load it by), ``name``, ``kind``,
    ``sha256`` (of the base weights file), ``version``, ``nbase``, ``diam_mean``.
``rank``, ``alpha``, ``layers``
    The low-rank layers (:mod:`segmentation.core.lora`): which Conv2d layers, their rank, ``alpha``.
``state``, ``weights_sha256``
    The adapter weights (``"<layer>.lora_a"``, ``"<layer>.lora_b"``) and :func:`weights_sha256` of
    them, so a damaged or edited file is refused.
``params``, ``training``, ``correction_ids``, ``metadata``, ``created``
    How it was trained and on what.

This module sits below both the adapters' training (:mod:`segmentation.core.adapter`, which
writes the file and loads its base model through :mod:`modelzoo`) and :mod:`modelzoo` (which
loads an adapter file as a model), so neither imports the other for the format.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .errors import ModelNotAvailableError

__all__ = ["ADAPTER_FORMAT", "check_adapter_payload", "check_base_matches", "read_adapter_file", "weights_sha256"]

ADAPTER_FORMAT = "ezquant-adapter/1"


def weights_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of the adapter weights (names, shapes, float32 bytes, in name order)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().cpu().float().contiguous().numpy()
        digest.update(key.encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def read_adapter_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an adapter file; return its payload (``format``, ``base``, ``state`` ...).

    Raises
    ------
    ModelNotAvailableError
        If the file is missing, is not an adapter file, or its weights do not match the hash
        written into it (a damaged or edited file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelNotAvailableError(f"adapter file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not a checkpoint
        raise ModelNotAvailableError(f"cannot read adapter file {path.name}: {exc.__class__.__name__}") from exc
    return check_adapter_payload(payload, path.name)


def check_adapter_payload(payload: Any, name: str) -> dict[str, Any]:
    """``payload`` if it is a complete adapter (see :func:`read_adapter_file`), else raise."""
    if not isinstance(payload, dict) or payload.get("format") != ADAPTER_FORMAT:
        raise ModelNotAvailableError(f"{name} is not an EZQuant adapter file (format {ADAPTER_FORMAT})")
    required = ("base", "rank", "alpha", "layers", "state", "weights_sha256")
    missing = [k for k in required if k not in payload]
    base = payload.get("base")
    if missing or not isinstance(base, dict) or "model" not in base or not isinstance(payload["state"], dict):
        raise ModelNotAvailableError(f"adapter file {name} is incomplete (missing {', '.join(missing) or 'base'})")
    if weights_sha256(payload["state"]) != payload["weights_sha256"]:
        raise ModelNotAvailableError(f"adapter file {name} is damaged: its weights do not match their SHA-256")
    return payload


def check_base_matches(payload: dict[str, Any], base_sha256: str | None, name: str) -> None:
    """Refuse to put an adapter on a base network other than the one it was trained on."""
    want = payload["base"].get("sha256")
    if want and base_sha256 and want != base_sha256:
        raise ModelNotAvailableError(
            f"adapter {name} was trained on base model {payload['base'].get('name')!r} with SHA-256 "
            f"{want[:12]}..., but that model now has SHA-256 {base_sha256[:12]}...: retrain the adapter")
