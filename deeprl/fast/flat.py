"""Flat parameters, and the optimizer step and gradient clipping that read them as one tensor.

On a 64-unit network every kernel call costs about as much as its arithmetic, so an Adam step or a clip over a
list of ten parameter tensors is mostly call overhead. Laid out by FlatParams, the parameters are views of one
flat tensor (and their gradients views of another): Adam is one fused kernel on that tensor, clipping one dot
product through a numpy view. Adam and clip_grad_norm fall back to the per-tensor arithmetic for parameters
that are not laid out flat, with the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import torch

_FLAT_ATTR = "_deeprl_flat"  # set on each parameter by FlatParams, read only through flat_params_of() below


def flat_params_of(params: list) -> FlatParams | None:
    """The FlatParams that lays out exactly `params`, or None."""
    flat = getattr(params[0], _FLAT_ATTR, None) if params else None
    return flat if flat is not None and flat.owns(params) else None


class FlatParams:
    """Parameters re-seated as views of one flat tensor, and their gradients as views of another.

    Why: gradient-norm clipping and Adam then act on one tensor (a few kernel calls a step) instead of a list per
    parameter, which on a 64-unit network costs more than the arithmetic. The parameters stay the module's own
    nn.Parameter objects (state_dict, load_state_dict and in-place updates all see the flat storage), and autograd
    accumulates into the existing .grad views in place, so either way of computing gradients fills `grad`.
    `params` is the layout order (callers choose it so that tensors used together lie side by side).
    """

    def __init__(self, params: Iterable[torch.Tensor]) -> None:
        self.params = list(params)
        first = self.params[0]
        self.numel = sum(p.numel() for p in self.params)
        self.data = torch.empty(self.numel, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.data)
        self.offsets: list[int] = []
        self.grads: list[torch.Tensor] = []
        self.steps = 0  # optimizer steps taken on `data` (a change its version counter can miss)
        self._consts: dict[float, torch.Tensor] = {}
        off = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.data[off : off + n].copy_(p.detach().reshape(-1))
                p.data = self.data[off : off + n].view_as(p)
                g = self.grad[off : off + n].view_as(p)
                p.grad = g
                setattr(p, _FLAT_ATTR, self)
                self.offsets.append(off)
                self.grads.append(g)
                off += n

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        # a deep copy of the parameters gets tensors of its own, which this layout no longer describes
        return None

    def owns(self, params: Iterable[torch.Tensor]) -> bool:
        """True while `params` are exactly these parameters, still backed by the flat tensor (a deepcopy or
        .to(device) gives parameters of their own)."""
        params = list(params)
        base = self.data.untyped_storage().data_ptr()
        return (
            len(params) == len(self.params)
            and {id(p) for p in params} == {id(p) for p in self.params}
            and all(p.untyped_storage().data_ptr() == base for p in params)
        )

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
        return [flat[o : o + p.numel()].view_as(p) for o, p in zip(self.offsets, self.params)]

    def sync_grads(self) -> None:
        """Point every .grad back at its flat view (copying what autograd or a caller put there instead)."""
        for p, g in zip(self.params, self.grads):
            if p.grad is not g:
                if p.grad is None:
                    g.zero_()
                else:
                    g.copy_(p.grad)
                p.grad = g


def clip_grad_norm(params: list, max_norm: float) -> torch.Tensor | float:
    """nn.utils.clip_grad_norm_ without its per-call checks: same arithmetic (scale by max_norm / (norm + 1e-6)
    when above), no host sync; on flat parameters (FlatParams) one norm and one multiply over the flat gradient."""
    flat = getattr(params[0], _FLAT_ATTR, None) if params else None  # (not flat_params_of: once a step)
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

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params]
        self.param_groups: list[dict[str, Any]] = [
            {
                "lr": float(lr),
                "betas": tuple(betas),
                "eps": float(eps),
                "weight_decay": 0.0,
                "amsgrad": False,
                "maximize": False,
                "params": list(range(len(self.params))),
            }
        ]
        self.flat = flat = flat_params_of(self.params)
        if flat is not None:
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
            grads = [cast(torch.Tensor, self.params[i].grad) for i in live]  # `live`: their grads are set
            m, v = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live]
            steps = [self.steps[i] for i in live]
            torch._foreach_add_(steps, 1)
        if self._fused:
            torch._fused_adam_(
                params,
                grads,
                m,
                v,
                [],
                steps,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=eps,
                amsgrad=False,
                maximize=False,
            )
            return
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        for p, mi, vi, s in zip(params, m, v, steps):
            t = float(s)
            denom = (vi / (1 - beta2**t)).sqrt_().add_(eps)
            p.addcdiv_(mi, denom, value=-lr / (1 - beta1**t))

    def state_dict(self) -> dict:
        state = {
            i: {
                "step": self.steps[i].clone(),
                "exp_avg": self.exp_avg[i].clone(),
                "exp_avg_sq": self.exp_avg_sq[i].clone(),
            }
            for i in range(len(self.params))
            if self.steps[i] > 0
        }
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
