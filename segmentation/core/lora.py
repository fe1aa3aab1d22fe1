"""Low-rank adapters on the Conv2d layers of a network (LoRA for convolutions).

A frozen convolution ``W`` (``out x in x k x k``) becomes ``W + s B A`` with ``A`` a ``k x k``
convolution from ``in`` to ``rank`` channels (the base layer's stride, padding and dilation), ``B``
a ``1 x 1`` convolution from ``rank`` back to ``out`` channels and ``s = alpha / rank`` [1]_.
``B`` starts at zero, so an adapter fresh from :func:`inject` changes nothing; only ``A`` and
``B`` are trained. Because ``B`` is ``1 x 1``, ``B(A(x))`` is the convolution of ``x`` with the
kernel ``sum_r B[o, r] A[r, i]``: the adapter merges exactly into the base weights
(:func:`merge_into`), and a merged network runs at the base network's speed.

References
----------
.. [1] E. J. Hu, Y. Shen, P. Wallis, Z. Allen-Zhu, Y. Li, S. Wang, L. Wang, W. Chen, "LoRA:
   Low-Rank Adaptation of Large Language Models", ICLR (2022).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any, Iterable

# This module imports torch at the top; the rest of the core imports it only inside the
# functions that build or run an adapter, so that importing segmentation.core stays cheap.
import torch
from torch import nn

from .errors import InvalidParameterError


class LoRAConv2d(nn.Module):
    """``base(x) + scale * B(A(x))`` around a frozen ``torch.nn.Conv2d``.

    Parameters
    ----------
    base : the convolution to adapt (not copied; its parameters are not touched).
    rank : channels between ``A`` and ``B``.
    alpha : ``scale = alpha / rank``.
    generator : ``torch.Generator`` for the initialisation of ``A``.
    """

    def __init__(self, base: nn.Conv2d, rank: int, alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        if base.groups != 1:
            raise InvalidParameterError("LoRA on grouped convolutions is not supported")
        self.base = base
        self.rank = int(rank)
        self.scale = float(alpha) / float(rank)
        device = base.weight.device
        self.lora_a = nn.Conv2d(base.in_channels, rank, base.kernel_size, stride=base.stride, padding=base.padding,
                                dilation=base.dilation, bias=False, padding_mode=base.padding_mode).to(device)
        self.lora_b = nn.Conv2d(rank, base.out_channels, 1, bias=False).to(device)
        # LoRA's initialisation: A like a fresh layer (uniform in +-1/sqrt(fan_in)), B zero.
        bound = 1.0 / math.sqrt(base.in_channels * math.prod(base.kernel_size))
        with torch.no_grad():
            self.lora_a.weight.uniform_(-bound, bound, generator=generator)
            self.lora_b.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.lora_b(self.lora_a(x))

    def delta_weight(self) -> torch.Tensor:
        """``scale * B A`` as an (out, in, k, k) kernel: the change to ``base.weight``."""
        return self.scale * torch.einsum("or,rikl->oikl", self.lora_b.weight[:, :, 0, 0], self.lora_a.weight)


def conv_layer_names(net: Any, patterns: Iterable[str] = ("*",)) -> list[str]:
    """Names of the ``Conv2d`` modules of ``net`` matching any of the glob ``patterns``."""
    patterns = tuple(patterns)
    return [name for name, module in net.named_modules()
            if type(module) is torch.nn.Conv2d and any(fnmatch.fnmatchcase(name, p) for p in patterns)]


def parent_of(net: Any, name: str) -> tuple[Any, str]:
    *path, leaf = name.split(".")
    parent = net
    for part in path:
        parent = getattr(parent, part)
    return parent, leaf


def inject(net: Any, names: list[str], rank: int, alpha: float, seed: int = 0) -> dict[str, Any]:
    """Wrap the ``Conv2d`` modules ``names`` of ``net`` (in place) in LoRA modules.

    Every parameter of ``net`` is frozen first (``requires_grad = False``); the adapter's ``A``
    and ``B`` are the only trainable tensors. ``A`` is drawn from a generator seeded with
    ``seed``, so an adapter is reproducible. Returns ``{name: LoRAConv2d}``.
    """
    for p in net.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(int(seed))
    wrapped = {}
    for name in names:
        parent, leaf = parent_of(net, name)
        base = getattr(parent, leaf)
        if type(base) is not torch.nn.Conv2d:
            raise InvalidParameterError(f"layer {name!r} is a {type(base).__name__}, not a Conv2d")
        module = LoRAConv2d(base, rank, alpha, generator=generator)
        setattr(parent, leaf, module)
        wrapped[name] = module
    return wrapped


def adapter_state(wrapped: dict[str, Any]) -> dict[str, Any]:
    """``{"<layer>.lora_a": tensor, "<layer>.lora_b": tensor}``: the weights an adapter file holds."""
    state = {}
    for name, module in wrapped.items():
        state[f"{name}.lora_a"] = module.lora_a.weight.detach().cpu().clone()
        state[f"{name}.lora_b"] = module.lora_b.weight.detach().cpu().clone()
    return state


def load_adapter_state(wrapped: dict[str, Any], state: dict[str, Any]) -> None:
    """Copy ``state`` (as :func:`adapter_state` makes it) into the wrapped layers."""
    expected = {f"{n}.{part}" for n in wrapped for part in ("lora_a", "lora_b")}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise InvalidParameterError(
            f"adapter weights do not fit the network: {len(missing)} layer weights missing, {len(extra)} unknown"
            + (f" (e.g. {(missing or extra)[0]})" if missing or extra else ""))
    with torch.no_grad():
        for name, module in wrapped.items():
            for part in ("lora_a", "lora_b"):
                target = getattr(module, part).weight
                value = state[f"{name}.{part}"]
                if tuple(value.shape) != tuple(target.shape):
                    raise InvalidParameterError(
                        f"adapter weight {name}.{part} has shape {tuple(value.shape)}, the network needs "
                        f"{tuple(target.shape)}")
                target.copy_(value.to(target.dtype))


def delta_from_state(state: dict[str, Any], name: str, scale: float) -> Any:
    """The (out, in, k, k) weight change of layer ``name`` from an adapter state dict."""
    a = state[f"{name}.lora_a"].float()
    b = state[f"{name}.lora_b"].float()[:, :, 0, 0]
    return scale * torch.einsum("or,rikl->oikl", b, a)


def merge_into(net: Any, state: dict[str, Any], names: list[str], scale: float) -> None:
    """Add the adapter ``state`` to the plain ``Conv2d`` weights ``names`` of ``net`` (in place).

    ``net`` must not carry LoRA modules: this is how a base network becomes base + adapter for
    inference, with no extra cost per call.
    """
    with torch.no_grad():
        for name in names:
            parent, leaf = parent_of(net, name)
            conv = getattr(parent, leaf)
            if type(conv) is not torch.nn.Conv2d:
                raise InvalidParameterError(f"layer {name!r} of the base network is not a Conv2d")
            delta = delta_from_state(state, name, scale)
            if tuple(delta.shape) != tuple(conv.weight.shape):
                raise InvalidParameterError(
                    f"adapter layer {name} changes a {tuple(delta.shape)} kernel, the base network's is "
                    f"{tuple(conv.weight.shape)}")
            conv.weight.add_(delta.to(conv.weight.device, conv.weight.dtype))
