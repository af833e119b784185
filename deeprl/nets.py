"""Networks every algorithm shares: MLP trunks with CleanRL's orthogonal init, and the Nature CNN for pixels.

The optimizer and clipping that the small-network paths use live in deeprl.fast.flat; they are re-exported here
for the algorithms that import them from this module (dqn.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from deeprl.fast.flat import Adam, FlatParams, clip_grad_norm

if TYPE_CHECKING:
    import gymnasium as gym

__all__ = [
    "ACTIVATIONS",
    "Adam",
    "FlatParams",
    "NatureCNN",
    "clip_grad_norm",
    "flat_dim",
    "flush_denormals",
    "layer_init",
    "mlp",
    "set_threads",
]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "swish": nn.SiLU}  # swish: ML-Agents' choice


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain `std`, constant bias (CleanRL, and the PPO implementation-details paper)."""
    weight, b = layer.weight, layer.bias
    assert isinstance(weight, torch.Tensor) and isinstance(b, torch.Tensor)  # a Linear or a Conv, with its bias
    nn.init.orthogonal_(weight, std)
    nn.init.constant_(b, bias)
    return layer


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int | None = None,
    activation: str = "tanh",
    out_std: float = 1.0,
    init: bool = True,
) -> nn.Sequential:
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
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_channels, *frame_hw)).shape[1]
        self.fc = nn.Sequential(layer_init(nn.Linear(n, features)), nn.ReLU())
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one new tensor divided in place: the same numbers as x.float() / 255, a third less memory traffic
        return self.fc(self.conv(x.to(torch.float32, copy=True).div_(255.0)))


def flat_dim(space: gym.spaces.Space) -> int:
    """Size of a flattened Box observation (Discrete spaces count as one-hot)."""
    if hasattr(space, "n"):
        return int(space.n)
    if space.shape is None:
        raise TypeError(f"{space} has neither n nor a shape")
    return int(np.prod(space.shape))


def set_threads(n: int) -> None:
    """Use `n` threads for torch's operators AND for numpy's BLAS (OpenBLAS): the numpy inference and loss
    arithmetic of the small-network paths call BLAS on tiny arrays, where OpenBLAS's second thread only spins
    against the env stepping for the other core (a quarter of a CartPole PPO run's time on 2 cores)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")  # stays in force (no `with`): for the rest of the process


@contextmanager
def at_most_threads(n: int) -> Iterator[None]:
    """torch's operators and numpy's BLAS on at most `n` threads inside the block, then the counts put back. For the
    steps of a rollout (deeprl.rollout.Collector) whose envs run in worker processes (deeprl.envs.vector.
    WorkerVectorEnv) or whose acting is numpy's on a few rows: the other cores step the envs, and a second thread
    of the acting process only spins against them (Huggy's 20 dogs on 2 cores, trained in 2 worker processes:
    1,900 steps/s with a second thread, 2,400 without; in one process, 100k steps took 34.7 s against 39.1 s)."""
    from threadpoolctl import threadpool_limits

    with _torch_threads_at_most(n), threadpool_limits(n, user_api="blas"):
        yield


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's operators on one thread inside the block, then put the count back. For one observation's pass
    through a convnet (a recurrent agent playing): on a busy machine a second OpenMP thread only waits for a core,
    and made each Doom decision 45x slower (114 ms against 2.5 ms)."""
    with _torch_threads_at_most(1):
        yield


@contextmanager
def _torch_threads_at_most(n: int) -> Iterator[None]:
    """torch's operators on at most `n` threads inside the block, then the count put back."""
    threads = torch.get_num_threads()
    if threads > n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if threads > n:
            torch.set_num_threads(threads)


def flush_denormals() -> None:
    """Treat subnormal floats as zero in this thread's arithmetic (the CPU's flush-to-zero and denormals-are-zero
    modes, which TensorFlow turns on by default). Adam's second moment of a weight whose gradient stays near zero
    (a dead ReLU's) shrinks by beta2 every step until it is subnormal, and on x86 every operation on a subnormal
    takes about a hundred times as long: in a DQN CartPole run, Adam's step over 67k parameters cost 1.1 ms instead
    of 0.14 ms, a quarter of the run. Flushing changes only numbers below 1.2e-38, which sit under Adam's eps."""
    torch.set_flush_denormal(True)
