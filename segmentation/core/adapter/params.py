"""The parameters of an adapter and of its training: frozen, validated, serialisable."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._validation import Params, check_number
from ..errors import InvalidParameterError

__all__ = ["AdapterParams", "AdapterTrainingParams"]


@dataclass(frozen=True)
class AdapterParams(Params):
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

    _what = "AdapterParams fields"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rank", check_number("rank", self.rank, low=1, integer=True))
        object.__setattr__(self, "alpha", check_number("alpha", self.alpha, low=0, low_open=True))
        targets = self.targets
        if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets \
                or not all(isinstance(t, str) and t for t in targets):
            raise InvalidParameterError(f"targets must be a non-empty list of layer name patterns, got {targets!r}")
        object.__setattr__(self, "targets", tuple(targets))
        object.__setattr__(self, "seed", check_number("seed", self.seed, low=0, integer=True))


@dataclass(frozen=True)
class AdapterTrainingParams(Params):
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

    _what = "AdapterTrainingParams fields"

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 1), ("warmup", 0), ("checkpoint_every", 1), ("seed", 0),
                          ("crop_size", 64)):
            object.__setattr__(self, name, check_number(name, getattr(self, name), low=low, integer=True))
        if self.crop_size % 16:
            raise InvalidParameterError(f"crop_size must be a multiple of 16, got {self.crop_size}")
        object.__setattr__(self, "learning_rate", check_number("learning_rate", self.learning_rate, low=0, high=1,
                                                               low_open=True))
        for name in ("weight_decay", "scale_range"):
            object.__setattr__(self, name, check_number(name, getattr(self, name), low=0, high=1))

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of step ``step`` (0-based)."""
        if step < self.warmup:
            return self.learning_rate * (step + 1) / (self.warmup + 1)
        span = max(self.steps - self.warmup, 1)
        t = min((step - self.warmup) / span, 1.0)
        return self.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
