"""PPO's gradient written out for the FastMLP: the derivative of deeprl.algos.ppo.ppo_loss, computed without autograd.

The update in deeprl.algos.ppo asks an objective for each minibatch's step (`loss(mb, ...)`), checks its
`approx_kl`, then calls `step.backward()` and the optimizer. `WrittenOutPPO` is that objective for policies with a
written-out twin (policy.fast); it sets the same gradients autograd sets on ppo_loss (tests/test_ppo.py holds
the two equal, parameter by parameter and over a whole run).

ppo_loss depends on the parameters only through log_prob, entropy and value per sample, so its gradient is given
to FastMLP.backward as those three derivatives:

    d L_clip / d log_prob = -A * ratio / B   where the unclipped term is the max (else 0)
    d L_value / d value   = 2 * vf_coef * (V - R) / B, or with clip_range_vf the derivative of the larger square
    d loss / d entropy    = -ent_coef / B    (the same for every sample)

The surrogate terms are kept divided by B (`neg_adv_n` = -A / B), so the first derivative is one masked product.
The per-sample terms are kept raw and averaged once per update in `summary` (a dozen array calls saved a step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from deeprl.fast.actor_critic import FastMLP

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)  # the CPU path's numpy arrays, or tensors elsewhere


def standardized(adv: ArrayT) -> ArrayT:
    """(A - mean) / (std + 1e-8) with torch's unbiased std (SB3's normalization); numpy's needs ddof=1 to match."""
    std = adv.std(ddof=1) if isinstance(adv, np.ndarray) else adv.std()
    return (adv - adv.mean()) / (std + 1e-8)


_CONSTS: dict = {}


def _const(value: float, like: np.ndarray | torch.Tensor) -> float | torch.Tensor:
    """A cached 0-d tensor: tensor-by-tensor arithmetic skips the conversion a Python number costs each call
    (a numpy array takes the number as it is: it stays in the array's dtype)."""
    if isinstance(like, np.ndarray):
        return value
    key = (value, like.dtype, like.device)
    t = _CONSTS.get(key)
    if t is None:
        if len(_CONSTS) > 256:
            _CONSTS.clear()
        t = _CONSTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return t


@dataclass
class WrittenOutStep:
    """One minibatch under the current parameters: its loss's derivatives, and the per-sample terms of the
    diagnostics (numpy arrays on the CPU, tensors elsewhere)."""

    fast: FastMLP
    ctx: tuple | None  # what FastMLP.backward reads; dropped once used
    g_logp: object
    g_value: object
    g_entropy: float
    ratio: np.ndarray | torch.Tensor
    log_ratio: np.ndarray | torch.Tensor
    surr: object  # -A * ratio / B
    surr_clipped: object  # -A * clip(ratio) / B
    value_sq: object  # (V - R)^2 per sample, or V - R when `value_squared` is False (squared in `summary`)
    value_squared: bool
    dist_state: object  # what FastMLP.entropy reads
    n: int

    @property
    def approx_kl(self) -> np.ndarray | torch.Tensor:
        return ((self.ratio - 1) - self.log_ratio).mean()

    def backward(self) -> None:
        """Set every parameter's gradient (the flat gradient tensor) to d ppo_loss / d parameter on this batch."""
        self.fast.backward(self.ctx, self.g_logp, self.g_value, self.g_entropy)
        self.ctx = None


class WrittenOutPPO:
    """ppo_loss's gradient through a FastMLP (see the module docstring)."""

    def __init__(self, fast: FastMLP):
        self.fast = fast

    def prepare(self, data: dict, normalize_advantage: bool) -> dict:
        """The rollout as the steps read it (FastMLP.prepare's inputs, numpy views of the per-sample tensors on
        the CPU), with its advantages normalized once when asked (a whole-rollout minibatch)."""
        fast = self.fast
        batch = {
            **fast.prepare(data["obs"], data["actions"]),
            **{k: fast.to_xp(data[k]) for k in ("log_probs", "advantages", "returns", "values")},
        }
        if normalize_advantage:
            batch["advantages"] = standardized(batch["advantages"])
        return batch

    def loss(
        self,
        mb: dict,
        clip_range: float,
        clip_range_vf: float | None,
        ent_coef: float,
        vf_coef: float,
        normalize_advantage: bool = True,
    ) -> WrittenOutStep:
        fast = self.fast
        xp = fast.xp
        log_prob, values, ctx = fast.evaluate(mb)
        n = log_prob.shape[0]
        adv = mb["advantages"]
        if normalize_advantage and n > 1:
            adv = standardized(adv)
        neg_adv_n = adv * _const(-1.0 / n, adv)
        log_ratio = log_prob - mb["log_probs"]
        ratio = xp.exp(log_ratio)
        surr = neg_adv_n * ratio
        surr_clipped = neg_adv_n * xp.clip(ratio, 1 - clip_range, 1 + clip_range)
        g_logp = surr * (surr >= surr_clipped)
        err = values - mb["returns"]
        if clip_range_vf is None:
            value_sq, squared = err, False
            g_value = err * _const(2 * vf_coef / n, err)
        else:
            delta = values - mb["values"]
            err_clipped = mb["values"] + xp.clip(delta, -clip_range_vf, clip_range_vf) - mb["returns"]
            sq_unclipped, sq_clipped = err * err, err_clipped * err_clipped
            value_sq, squared = xp.maximum(sq_unclipped, sq_clipped), True
            g_value = xp.where(sq_unclipped >= sq_clipped, err, err_clipped * (abs(delta) <= clip_range_vf)) * _const(
                2 * vf_coef / n, err
            )
        return WrittenOutStep(
            fast,
            ctx,
            g_logp,
            g_value,
            -ent_coef / n,
            ratio,
            log_ratio,
            surr,
            surr_clipped,
            value_sq,
            squared,
            fast.dist_state(ctx),
            n,
        )

    def summary(self, steps: list[WrittenOutStep], clip_range: float) -> dict[str, float]:
        """ppo_loss's diagnostics over every sample of the steps taken."""
        xp = self.fast.xp
        cat = xp.concatenate
        ratio, log_ratio = cat([s.ratio for s in steps]), cat([s.log_ratio for s in steps])
        surr, surr_clipped = cat([s.surr for s in steps]), cat([s.surr_clipped for s in steps])
        sq = cat([s.value_sq for s in steps])
        if not steps[0].value_squared:
            sq = sq * sq
        sizes = [s.n for s in steps]
        # the surrogate terms were divided by their batch's size: multiply it back
        scale = (
            float(sizes[0]) if len(set(sizes)) == 1 else cat([xp.full((k,), float(k), dtype=surr.dtype) for k in sizes])
        )
        out = {
            "policy_loss": (xp.maximum(surr, surr_clipped) * scale).mean(),
            "value_loss": sq.mean(),
            "entropy": self.fast.entropy([s.dist_state for s in steps]).mean(),
            "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_fraction": (abs(ratio - 1) > clip_range).sum() / len(ratio),
        }
        return {k: float(v) for k, v in out.items()}
