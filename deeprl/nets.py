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



class Adam:
    """Adam (Kingma & Ba; torch.optim.Adam's arithmetic, bias-corrected, eps outside the square root) in one fused
    kernel call per step.

    Why not torch.optim.Adam: its first construction imports torch._dynamo (seconds of start-up on this machine, a
    large share of a CartPole run) and each step() goes through hooks and wrappers that cost more than the update of
    a 64-unit network. state_dict()/load_state_dict() use torch's format, so checkpoint helpers
    (deeprl.checkpoint.optimizer_to_tensors) and a later switch back to torch.optim see no difference.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params]
        self.param_groups = [{"lr": float(lr), "betas": tuple(betas), "eps": float(eps), "weight_decay": 0.0,
                              "amsgrad": False, "maximize": False, "params": list(range(len(self.params)))}]
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self._fused = hasattr(torch, "_fused_adam_")

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i].detach() for i in live]
        grads = [self.params[i].grad for i in live]
        m, v, steps = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        if self._fused:
            torch._fused_adam_(params, grads, m, v, [], steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                               eps=eps, amsgrad=False, maximize=False)
            return
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        for p, mi, vi, s in zip(params, m, v, steps):
            t = float(s)
            denom = (vi / (1 - beta2**t)).sqrt_().add_(eps)
            p.addcdiv_(mi, denom, value=-lr / (1 - beta1**t))

    def state_dict(self) -> dict:
        state = {i: {"step": self.steps[i].clone(), "exp_avg": self.exp_avg[i].clone(),
                     "exp_avg_sq": self.exp_avg_sq[i].clone()} for i in range(len(self.params)) if self.steps[i] > 0}
        return {"state": state, "param_groups": [dict(g) for g in self.param_groups]}

    def load_state_dict(self, sd: dict) -> None:
        group = dict(sd["param_groups"][0])
        if len(group.get("params", [])) != len(self.params):
            raise ValueError("optimizer state does not match the parameters")
        self.param_groups[0].update({k: group[k] for k in ("lr", "eps") if k in group})
        if "betas" in group:
            self.param_groups[0]["betas"] = tuple(group["betas"])
        for i, st in sd["state"].items():
            i = int(i)
            with torch.no_grad():
                self.steps[i].copy_(torch.as_tensor(st["step"], dtype=torch.float32).reshape(()))
                self.exp_avg[i].copy_(torch.as_tensor(st["exp_avg"]))
                self.exp_avg_sq[i].copy_(torch.as_tensor(st["exp_avg_sq"]))
