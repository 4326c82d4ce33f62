"""Quantization-aware fine-tuning: train through an emulation of the served int8 graph.

The served file is ONNX Runtime's dynamic int8 of the exporter's plain graph (``graph_optimize.quantize_int8``):
every Linear's input is quantized on each call to uint8 over the whole tensor (its range widened to hold 0),
its weight per output channel to symmetric int8 in [-127, 127], and each embedding table per tensor to
uint8; the integer products are exact, so rounding is the whole difference from fp32. ``Int8Emulation``
makes a torch model round the same way (straight-through gradients) while ``active``, so a fine-tune can
teach the weights to give the same answer with and without it: int8 <-> fp32 top-1 agreement is what the
plain int8 file loses otherwise (docs/MODEL.md, "Agreement").
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F  # noqa: N812 (torch's own convention)
from torch import nn

__all__ = ["Int8Emulation", "fake_int8_per_channel", "fake_uint8"]


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even (as ONNX Runtime does) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def fake_uint8(x: torch.Tensor) -> torch.Tensor:
    """``x`` quantized to uint8 and back, as ``DynamicQuantizeLinear`` does: one scale for the tensor."""
    lo = x.detach().min().clamp(max=0.0)
    hi = x.detach().max().clamp(min=0.0)
    scale = ((hi - lo) / 255.0).clamp(min=1e-12)
    zero_point = torch.round(-lo / scale).clamp(0.0, 255.0)
    return (torch.clamp(_round_ste(x / scale) + zero_point, 0.0, 255.0) - zero_point) * scale


def fake_int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    """A Linear's ``[out, in]`` weight quantized to symmetric int8 per output channel and back."""
    scale = (weight.detach().abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
    return torch.clamp(_round_ste(weight / scale), -127.0, 127.0) * scale


class Int8Emulation:
    """Patches every ``nn.Linear`` and ``nn.Embedding`` of ``model``; they round as the int8 file while ``active``.

    The patch lives on the module instances (their ``forward``), so the weights, their names and the saved
    checkpoint are untouched: one model computes both paths, switched per forward.
    """

    def __init__(self, model: nn.Module) -> None:
        self.active = False
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.forward = partial(self._linear, module)  # type: ignore[method-assign]
            elif isinstance(module, nn.Embedding):
                module.forward = partial(self._embedding, module)  # type: ignore[method-assign]

    def _linear(self, module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return F.linear(x, module.weight, module.bias)
        return F.linear(fake_uint8(x), fake_int8_per_channel(module.weight), module.bias)

    def _embedding(self, module: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        weight = fake_uint8(module.weight) if self.active else module.weight
        return F.embedding(ids, weight, module.padding_idx, module.max_norm, module.norm_type,
                           module.scale_grad_by_freq, module.sparse)  # fmt: skip
