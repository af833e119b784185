"""An MLP's forward pass in numpy, for acting on a handful of rows at a time.

Why: collecting experience runs the network on one observation (REINFORCE) or one row per env (PPO, A2C) per
step, where numpy's cost per call is a third of torch's. The layers are given as (weight [in, out], bias [out])
arrays: views of the torch weights (REINFORCE: every optimizer step shows up at once) or copies packed for speed
(FastMLP: refreshed after each update, narrow towers packed into one block-diagonal network).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn


def _relu_(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


def _tanh_(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _swish(x: np.ndarray) -> np.ndarray:  # x * sigmoid(x), torch's SiLU
    return x / (1.0 + np.exp(-x))


ACTIVATIONS = {"relu": _relu_, "tanh": _tanh_, "elu": _elu, "swish": _swish}


class NumpyMLP:
    """x -> act(x W1 + b1) -> ... -> x Wn + bn (no activation after the last layer), on [in] or [B, in] arrays."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], activation: str):
        self.layers = layers
        self.act = ACTIVATIONS[activation]

    @classmethod
    def of_linears(cls, linears: Iterable[nn.Linear], activation: str) -> NumpyMLP:
        """Views (no copies) of the weights of torch nn.Linear layers on the CPU, in order."""
        return cls([(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears], activation)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            x = x @ w  # a new array: the in-place steps below never touch the caller's
            x += b
            if i < last:
                x = self.act(x)
        return x
