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
        # one new tensor divided in place: the same numbers as x.float() / 255, a third less memory traffic
        return self.fc(self.conv(x.to(torch.float32, copy=True).div_(255.0)))


def flat_dim(space) -> int:
    """Size of a flattened Box observation (Discrete spaces count as one-hot)."""
    if hasattr(space, "n"):
        return int(space.n)
    return int(np.prod(space.shape))



def set_threads(n: int) -> None:
    """Use `n` threads for torch's operators AND for numpy's BLAS (OpenBLAS): the numpy inference and loss
    arithmetic of the small-network paths call BLAS on tiny arrays, where OpenBLAS's second thread only spins
    against the env stepping for the other core (a quarter of a CartPole PPO run's time on 2 cores)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")  # stays in force (no `with`): for the rest of the process


def flush_denormals() -> None:
    """Treat subnormal floats as zero in this thread's arithmetic (the CPU's flush-to-zero and denormals-are-zero
    modes, which TensorFlow turns on by default). Adam's second moment of a weight whose gradient stays near zero
    (a dead ReLU's) shrinks by beta2 every step until it is subnormal, and on x86 every operation on a subnormal
    takes about a hundred times as long: in a DQN CartPole run, Adam's step over 67k parameters cost 1.1 ms instead
    of 0.14 ms, a quarter of the run. Flushing changes only numbers below 1.2e-38, which sit under Adam's eps."""
    torch.set_flush_denormal(True)


class FlatParams:
    """Parameters re-seated as views of one flat tensor, and their gradients as views of another.

    Why: gradient-norm clipping and Adam then act on one tensor (a few kernel calls a step) instead of a list per
    parameter, which on a 64-unit network costs more than the arithmetic. The parameters stay the module's own
    nn.Parameter objects (state_dict, load_state_dict and in-place updates all see the flat storage), and autograd
    accumulates into the existing .grad views in place, so either way of computing gradients fills `grad`.
    `params` is the layout order (callers choose it so that tensors used together lie side by side).
    """

    def __init__(self, params):
        self.params = list(params)
        first = self.params[0]
        self.numel = sum(p.numel() for p in self.params)
        self.data = torch.empty(self.numel, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.data)
        self.offsets, self.grads = [], []
        self.steps = 0  # optimizer steps taken on `data` (a change its version counter can miss)
        self._consts: dict[float, torch.Tensor] = {}
        off = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.data[off:off + n].copy_(p.detach().reshape(-1))
                p.data = self.data[off:off + n].view_as(p)
                g = self.grad[off:off + n].view_as(p)
                p.grad = g
                p._deeprl_flat = self
                self.offsets.append(off)
                self.grads.append(g)
                off += n

    def __deepcopy__(self, memo):
        # a deep copy of the parameters gets tensors of its own, which this layout no longer describes
        return None

    def owns(self, params) -> bool:
        """True while `params` are exactly these parameters, still backed by the flat tensor (a deepcopy or
        .to(device) gives parameters of their own)."""
        params = list(params)
        base = self.data.untyped_storage().data_ptr()
        return (len(params) == len(self.params) and {id(p) for p in params} == {id(p) for p in self.params}
                and all(p.untyped_storage().data_ptr() == base for p in params))

    def consts(self, *values: float) -> list[torch.Tensor]:
        """0-d tensors of `values` in the parameters' dtype and device, made once."""
        out = []
        for v in values:
            t = self._consts.get(v)
            if t is None:
                t = self._consts[v] = torch.tensor(v, dtype=self.data.dtype, device=self.data.device)
            out.append(t)
        return out

    def grad_numpy(self) -> np.ndarray:
        """A numpy view of `grad` (CPU only), made once."""
        g = self.__dict__.get("_grad_np")
        if g is None:
            g = self._grad_np = self.grad.numpy()
        return g

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views (shaped like each parameter) of a tensor laid out like `data`."""
        return [flat[o:o + p.numel()].view_as(p) for o, p in zip(self.offsets, self.params)]

    def sync_grads(self) -> None:
        """Point every .grad back at its flat view (copying what autograd or a caller put there instead)."""
        for p, g in zip(self.params, self.grads):
            if p.grad is not g:
                if p.grad is None:
                    g.zero_()
                else:
                    g.copy_(p.grad)
                p.grad = g


def clip_grad_norm(params: list, max_norm: float) -> torch.Tensor:
    """nn.utils.clip_grad_norm_ without its per-call checks: same arithmetic (scale by max_norm / (norm + 1e-6)
    when above), no host sync; on flat parameters (FlatParams) one norm and one multiply over the flat gradient."""
    flat = getattr(params[0], "_deeprl_flat", None) if params else None
    if flat is not None and len(params) == len(flat.params):
        flat.sync_grads()
        if flat.grad.device.type == "cpu":
            # on the CPU through numpy views of the same memory: a dot product and at most one in-place scale cost
            # less than the five tensor calls below (norm, add, divide, minimum, multiply) on a 10k-value vector
            g = flat.grad_numpy()
            norm = math.sqrt(float(np.dot(g, g)))
            coef = max_norm / (norm + 1e-6)
            if coef < 1.0:  # torch multiplies by min(coef, 1): a factor of 1 changes nothing
                g *= np.float32(coef)
            return norm
        norm = torch.linalg.vector_norm(flat.grad)
        # the same arithmetic with 0-d tensors for the constants (a Python number costs a conversion per op)
        eps, one, top = flat.consts(1e-6, 1.0, max_norm)
        flat.grad.mul_(torch.minimum(top / (norm + eps), one))
        return norm
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


class Adam:
    """Adam (Kingma & Ba; torch.optim.Adam's arithmetic, bias-corrected, eps outside the square root) in one fused
    kernel call per step.

    Why not torch.optim.Adam: its first construction imports torch._dynamo (seconds of start-up on this machine, a
    large share of a CartPole run) and each step() goes through hooks and wrappers that cost more than the update of
    a 64-unit network. state_dict()/load_state_dict() use torch's format, so checkpoint helpers
    (deeprl.checkpoint.optimizer_to_tensors) and a later switch back to torch.optim see no difference.

    Over parameters laid out by FlatParams the moments are flat too and a step is one kernel on one tensor; there
    every parameter takes part in every step (a None gradient counts as zero), as it does in a policy's update.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params]
        self.param_groups = [{"lr": float(lr), "betas": tuple(betas), "eps": float(eps), "weight_decay": 0.0,
                              "amsgrad": False, "maximize": False, "params": list(range(len(self.params)))}]
        flat = getattr(self.params[0], "_deeprl_flat", None) if self.params else None
        self.flat = flat if flat is not None and flat.owns(self.params) else None
        if self.flat is not None:
            self._m, self._v = torch.zeros_like(flat.data), torch.zeros_like(flat.data)
            self._step = torch.zeros((), dtype=torch.float32, device=flat.data.device)
            self._one = torch.ones((), dtype=torch.float32, device=flat.data.device)
            index = {id(p): i for i, p in enumerate(flat.params)}
            order = [index[id(p)] for p in self.params]
            m, v = flat.views(self._m), flat.views(self._v)
            self.exp_avg, self.exp_avg_sq = [m[i] for i in order], [v[i] for i in order]
            self.steps = [self._step] * len(self.params)
        else:
            self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self._fused = hasattr(torch, "_fused_adam_")

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.flat is not None:  # the .grad views stay: autograd accumulates into them in place
            self.flat.sync_grads()
            self.flat.grad.zero_()
            return
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self) -> None:
        # every tensor stepped is detached (flat.data, p.detach()): no graph without a torch.no_grad per call
        group = self.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        if self.flat is not None:
            self.flat.sync_grads()
            self.flat.steps += 1
            self._step.add_(self._one)  # a 0-d tensor, not the number 1: no conversion per step
            params, grads, m, v, steps = [self.flat.data], [self.flat.grad], [self._m], [self._v], [self._step]
        else:
            live = [i for i, p in enumerate(self.params) if p.grad is not None]
            if not live:
                return
            params = [self.params[i].detach() for i in live]
            grads = [self.params[i].grad for i in live]
            m, v = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live]
            steps = [self.steps[i] for i in live]
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
