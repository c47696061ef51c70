"""Exponential moving average of the model weights (port of the official ``ModelEma``, SPEC §5.6).

After every optimiser step each state-dict entry is updated in key order, in place:
``e <- decay*e + (1 - decay)*m``. There is no warmup and no bias correction; the EMA starts as a
copy of the model. Evaluation uses the EMA weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["ModelEma"]


def _unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DistributedDataParallel wrappers."""
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model


class ModelEma:
    """An eval-mode deep copy of a model whose weights track an EMA of the model's weights.

    Args:
        model: the model to track (DataParallel/DDP wrappers are unwrapped).
        decay: EMA decay (official 0.999).
        device: optional device for the EMA copy; default: wherever the model lives.

    Attributes:
        module: the EMA model (eval mode, ``requires_grad`` off). Use it for evaluation.
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.999, device: torch.device | str | None = None
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.device = torch.device(device) if device is not None else None
        self.module = copy.deepcopy(_unwrap(model))
        self.module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        if self.device is not None:
            self.module.to(self.device)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step from the model's current weights, every state-dict entry in key order.

        Floating-point entries get ``e <- decay*e + (1 - decay)*m`` (in their own dtype); other
        entries (integer buffers) are copied.

        Raises:
            ValueError: the model's state-dict keys differ from the EMA's.
        """
        ema_state = self.module.state_dict()
        model_state = _unwrap(model).state_dict()
        if list(ema_state) != list(model_state):
            missing = [k for k in ema_state if k not in model_state][:10]
            extra = [k for k in model_state if k not in ema_state][:10]
            raise ValueError(
                f"EMA update: model state-dict keys differ from the EMA's (missing {missing}, extra {extra})"
            )
        for ema_value, model_value in zip(ema_state.values(), model_state.values()):
            model_value = model_value.to(device=ema_value.device)
            if ema_value.is_floating_point():
                ema_value.copy_(self.decay * ema_value + (1.0 - self.decay) * model_value)
            else:
                ema_value.copy_(model_value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA weights (the official checkpoints' ``state_dict_ema``, without ``module.``)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load EMA weights (strict: same keys and shapes as the model)."""
        self.module.load_state_dict(state_dict, strict=True)
