"""The parameters of an adapter and of its training: frozen, validated, serialisable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["AdapterParams", "AdapterTrainingParams"]


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidParameterError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _check_float(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or (value <= low if low_open else value < low) or value > high:
        bound = "(" if low_open else "["
        raise InvalidParameterError(f"{name} must lie in {bound}{low}, {high}], got {value!r}")
    return float(value)


class _Params:
    """to_dict/from_dict shared by the parameter objects."""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise InvalidParameterError(f"{cls.__name__} must be built from a JSON object")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InvalidParameterError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


@dataclass(frozen=True)
class AdapterParams(_Params):
    """The shape of an adapter.

    Parameters
    ----------
    rank : int >= 1
        Channels between ``A`` and ``B`` in every adapted layer.
    alpha : float > 0
        Scale ``alpha / rank`` of the adapter's contribution.
    targets : tuple of glob patterns
        Names of the ``Conv2d`` layers to adapt (``"*"``: all of them; ``"upsample.*"``: the
        decoder only). Matched against ``net.named_modules()`` names.
    seed : int
        Seed of the random initialisation of ``A``.
    """

    rank: int = 4
    alpha: float = 8.0
    targets: tuple[str, ...] = ("*",)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank", _check_int("rank", self.rank, 1))
        object.__setattr__(self, "alpha", _check_float("alpha", self.alpha, 0.0))
        targets = self.targets
        if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets \
                or not all(isinstance(t, str) and t for t in targets):
            raise InvalidParameterError(f"targets must be a non-empty list of layer name patterns, got {targets!r}")
        object.__setattr__(self, "targets", tuple(targets))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))


@dataclass(frozen=True)
class AdapterTrainingParams(_Params):
    """How an adapter is trained.

    Parameters
    ----------
    steps : int >= 1
        Optimiser steps.
    batch_size : int >= 1
        Planes per step (drawn at random, with replacement, from all planes of all examples).
    learning_rate : float > 0
        AdamW's peak learning rate; it rises linearly over the first ``warmup`` steps and falls
        along a cosine to a tenth of the peak at the end.
    weight_decay : float >= 0
        AdamW's decoupled weight decay (on the adapter weights only).
    warmup : int >= 0
        Steps of linear warm-up.
    crop_size : int >= 64, a multiple of 16
        Largest side of the augmented crops (Cellpose trains on 224).
    scale_range : float in [0, 1]
        Rescale jitter around the model's diameter: ``1 +- scale_range / 2`` (Cellpose: 0.5).
    checkpoint_every : int >= 1
        With a checkpoint path, save the training state every this many steps.
    seed : int
        Seed of the batches and augmentations.
    """

    steps: int = 80
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 10
    crop_size: int = 128
    scale_range: float = 0.5
    checkpoint_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("warmup", 0), ("checkpoint_every", 1), ("seed", 0)):
            object.__setattr__(self, name, _check_int(name, getattr(self, name), low))
        object.__setattr__(self, "crop_size", _check_int("crop_size", self.crop_size, 64))
        if self.crop_size % 16:
            raise InvalidParameterError(f"crop_size must be a multiple of 16, got {self.crop_size}")
        object.__setattr__(self, "learning_rate", _check_float("learning_rate", self.learning_rate, 0.0, 1.0))
        object.__setattr__(self, "weight_decay", _check_float("weight_decay", self.weight_decay, 0.0, 1.0,
                                                              low_open=False))
        object.__setattr__(self, "scale_range", _check_float("scale_range", self.scale_range, 0.0, 1.0,
                                                             low_open=False))

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        if step < self.warmup:
            return self.learning_rate * (step + 1) / (self.warmup + 1)
        span = max(self.steps - self.warmup, 1)
        t = min((step - self.warmup) / span, 1.0)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
