"""Features extractors: what an actor-critic reads of an observation, chosen from the observation space.

Flatten a Box (or MultiBinary), one-hot a Discrete, the Nature CNN for uint8 images, one extractor per key
concatenated for a Dict (SB3's CombinedExtractor, its MultiInputPolicy). Each has `dim`, its output width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.nets import NatureCNN

if TYPE_CHECKING:
    import gymnasium as gym

# ----------------------------------------------------------------------------------------------------------
# Spaces


def describe_space(space: Any) -> dict:  # a Gymnasium space, told apart by its type's name
    """JSON description of a Gymnasium space (what config.json records; the env is the source of truth)."""
    name = type(space).__name__
    if name == "Discrete":
        return {"type": "Discrete", "n": int(space.n)}
    if name == "Box":
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
    if name == "Dict":
        return {"type": "Dict", "spaces": {k: describe_space(s) for k, s in space.spaces.items()}}
    if name == "MultiDiscrete":
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if name == "MultiBinary":
        return {"type": "MultiBinary", "shape": list(np.shape(space.n) or [space.n])}
    return {"type": name}


def is_image(space: Any) -> bool:  # any Gymnasium space
    return type(space).__name__ == "Box" and len(space.shape) == 3 and space.dtype == np.uint8


class Flatten(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).float()


class OneHot(nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.dim = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(x.long().reshape(-1), self.dim).float()


class CNNFeatures(nn.Module):
    def __init__(self, space: gym.spaces.Box):
        super().__init__()
        c, h, w = space.shape  # channels first, as the Atari preprocessing produces
        self.cnn = NatureCNN(c, 512, (h, w))
        self.dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x)


class DictFeatures(nn.Module):
    """One extractor per key, outputs concatenated (SB3's CombinedExtractor)."""

    def __init__(self, space: gym.spaces.Dict):
        super().__init__()
        self.keys = list(space.spaces)
        parts = {k: make_features(space.spaces[k]) for k in self.keys}
        self.parts = nn.ModuleDict(parts)
        self.dim: int = sum(p.dim for p in parts.values())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.parts[k](obs[k]) for k in self.keys], dim=1)


Features = Flatten | OneHot | CNNFeatures | DictFeatures  # each with `dim` features out


def make_features(space: Any) -> Features:  # any Gymnasium space (an unsupported one is a UserError)
    name = type(space).__name__
    if name == "Dict":
        return DictFeatures(space)
    if name == "Discrete":
        return OneHot(int(space.n))
    if is_image(space):
        return CNNFeatures(space)
    if name in ("Box", "MultiBinary"):
        return Flatten(int(np.prod(space.shape)))
    raise UserError(f"Observations of type {name} are not supported by the actor-critic policies.")


@overload
def obs_to_tensor(obs: dict[str, np.ndarray], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]: ...
@overload
def obs_to_tensor(obs: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor: ...
def obs_to_tensor(
    obs: np.ndarray | dict[str, np.ndarray], device: torch.device | str = "cpu"
) -> torch.Tensor | dict[str, torch.Tensor]:
    """A batch of observations (array, or dict of arrays) as tensors; uint8 images stay uint8 (scaled in the CNN)."""
    if isinstance(obs, dict):
        return {k: obs_to_tensor(v, device) for k, v in obs.items()}
    t = torch.as_tensor(obs, device=device)
    if t.dtype == torch.float64:
        t = t.float()
    return t
