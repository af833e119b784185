"""Networks every algorithm shares: MLP trunks with CleanRL's orthogonal init, and the Nature CNN for pixels."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain `std`, constant bias (CleanRL, and the PPO implementation-details paper)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None = None, activation: str = "tanh",
        out_std: float = 1.0, init: bool = True) -> nn.Sequential:
    """Linear-activation stack; the last layer (if out_dim) has no activation and gain `out_std`."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    last = in_dim
    for h in hidden:
        lin = nn.Linear(last, h)
        layers += [layer_init(lin) if init else lin, act()]
        last = h
    if out_dim is not None:
        lin = nn.Linear(last, out_dim)
        layers.append(layer_init(lin, out_std) if init else lin)
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """Mnih et al. 2015: 3 conv layers + 512 linear, on uint8 frames (C, 84, 84) scaled to [0, 1] inside."""

    def __init__(self, in_channels: int = 4, features: int = 512, frame_hw: tuple[int, int] = (84, 84)):
        super().__init__()
        self.conv = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_channels, *frame_hw)).shape[1]
        self.fc = nn.Sequential(layer_init(nn.Linear(n, features)), nn.ReLU())
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x.float() / 255.0))


def flat_dim(space) -> int:
    """Size of a flattened Box observation (Discrete spaces count as one-hot)."""
    if hasattr(space, "n"):
        return int(space.n)
    return int(np.prod(space.shape))

