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


def _is_image(shape: tuple, dtype) -> bool:
    return len(shape) == 3 and np.dtype(dtype) == np.uint8


class MultiInputEncoder(nn.Module):
    """Dict of Box observations -> one feature vector (SB3's CombinedExtractor, the course's MultiInputPolicy).

    Keys are taken in sorted order (as gymnasium.spaces.Dict and SB3 order them). A vector key is flattened as it
    is, or, with `key_features`, passed through its own Linear + activation first; a uint8 image key (H, W, C) or
    (C, H, W) goes through a Nature CNN. The pieces are concatenated; `features` is the output width, so any
    trunk built with `mlp(encoder.features, ...)` follows. Inputs are a dict of tensors shaped (batch, *shape).
    """

    def __init__(self, space, key_features: int | None = None, activation: str = "tanh", cnn_features: int = 256):
        super().__init__()
        from gymnasium import spaces

        if not isinstance(space, spaces.Dict) or not space.spaces:
            raise ValueError(f"MultiInputEncoder needs a non-empty Dict observation space, not {space}")
        self.keys = sorted(space.spaces)
        self.shapes = {}
        self.channels_last = {}
        encoders, total = {}, 0
        for key in self.keys:
            sub = space.spaces[key]
            if not isinstance(sub, spaces.Box):
                raise ValueError(f"observation key '{key}' is {type(sub).__name__}; MultiInputEncoder takes Box spaces")
            shape = tuple(sub.shape)
            self.shapes[key] = shape
            if _is_image(shape, sub.dtype):
                last = shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)
                self.channels_last[key] = last
                c, h, w = (shape[2], shape[0], shape[1]) if last else shape
                encoders[key] = NatureCNN(c, cnn_features, (h, w))
                total += cnn_features
            elif key_features:
                encoders[key] = nn.Sequential(nn.Flatten(), layer_init(nn.Linear(int(np.prod(shape)), key_features)),
                                              ACTIVATIONS[activation]())
                total += key_features
            else:
                encoders[key] = nn.Flatten()
                total += int(np.prod(shape)) if shape else 1
        self.encoders = nn.ModuleDict(encoders)
        self.features = total

    def forward(self, obs: dict) -> torch.Tensor:
        parts = []
        for key in self.keys:
            x = obs[key]
            if key in self.channels_last:
                if self.channels_last[key]:
                    x = x.permute(0, 3, 1, 2)
            else:
                x = x.float().reshape(x.shape[0], -1)
            parts.append(self.encoders[key](x))
        return torch.cat(parts, dim=1)


def obs_to_tensor(obs, device="cpu"):
    """A batch of observations (array, or dict of arrays for Dict spaces) as tensors on `device`."""
    if isinstance(obs, dict):
        return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}
    return torch.as_tensor(np.asarray(obs), device=device)
