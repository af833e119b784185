"""The written-out actor-critic MLP: forward and backward of an ActorCritic on flat observations without autograd,
and its numpy inference for collection.

Chosen once, where the policy is built (`FastMLP.attach(policy)`, which deeprl.policies.build_policy calls with
fast=True); the algorithms then reach it as `policy.fast` (None: the general modules and autograd). The PPO
update's written-out gradient is deeprl.fast.ppo; the optimizer and clipping are deeprl.fast.flat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from deeprl.fast.flat import FlatParams
from deeprl.fast.numpy_mlp import NumpyMLP

LOG_2PI = math.log(2 * math.pi)
# The written-out passes run on numpy arrays on the CPU and on torch tensors on a GPU (`self.xp` is the module
# that does the arithmetic), so their arrays are typed by what both offer: Any.
Array = Any
# Acting packs both towers into one block-diagonal network when their layers are at most this wide. One product per
# layer instead of two wins while a call costs more than its arithmetic: 64-unit towers on 20 rows, 18 us packed
# against 24 us as two networks. Packing doubles the multiply-adds (the zero blocks), which wider layers feel:
# 512 x 3 towers on 20 rows (Huggy.yaml), 0.84 ms packed against 0.48 ms as two (2 cores; 1.41 against 0.66 ms on
# one thread). At 128 units the two are even.
PACK_MAX_WIDTH = 128


class FastMLP:
    """An ActorCritic on flat observations, forward and backward written out in torch ops with no autograd graph.

    Why: on a 2-core CPU a 64-unit network costs less to compute than autograd costs to record and replay it
    (about 30 graph nodes per minibatch); written out, a PPO gradient step is a fraction of the time. It reads and
    writes the policy's own parameters and .grad tensors, so the optimizer, checkpoints and the autograd path
    (evaluate_actions, which stays the reference; tests hold the two equal) all see one model.

    How it stays cheap, where each kernel call costs about as much as the arithmetic of a 256 x 64 layer:
    - the parameters are views of one flat tensor and their gradients views of another (nets.FlatParams), laid out
      level by level, so clipping and Adam act on one tensor and backward writes gradients in place (out=);
    - activations are feature-major ([units, batch]): the two towers' hidden layers at the same depth share one
      buffer, so each level has one activation, one activation-backward and one bias-gradient sum for both towers,
      and the first level (both towers read the same input) is a single matrix product forward and backward;
      the action head's softmax then runs along rows of the batch instead of over 2-wide rows.

    The loss is given by its per-sample derivatives with respect to log_prob, entropy and value, which is all an
    actor-critic loss depends on: `prepare()` the batch once, then `evaluate()` and `backward()` per step.
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.relu = policy.kwargs["activation"] == "relu"
        self.discrete = policy.discrete
        pi = [m for m in policy.pi_trunk if isinstance(m, nn.Linear)]
        vf = [m for m in policy.vf_trunk if isinstance(m, nn.Linear)]
        self.depth = (len(pi), len(vf))
        self.merged = min(self.depth)  # hidden levels both towers have
        self.width = max((m.out_features for m in pi + vf), default=0)  # the widest hidden layer
        order = []
        for level in range(max(self.depth)):
            layers = [t[level] for t in (pi, vf) if level < len(t)]
            order += [m.weight for m in layers] + [m.bias for m in layers]
        heads = (policy.action_head, policy.value_head)
        order += [p for m in heads for p in (m.weight, m.bias)]
        if not self.discrete:
            order.append(policy.log_std)
        self.flat = FlatParams(order)
        self.pi = [(m.weight, m.bias) for m in pi + [policy.action_head]]
        self.vf = [(m.weight, m.bias) for m in vf + [policy.value_head]]
        grad = {id(p): g for p, g in zip(self.flat.params, self.flat.grads)}
        offset = {id(p): o for p, o in zip(self.flat.params, self.flat.offsets)}
        # per tower and layer: (weight, bias as a column, weight's gradient, bias's gradient), views that stay valid
        self._layers = [
            [(w.detach(), b.detach()[:, None], grad[id(w)], grad[id(b)], w.detach().t()) for w, b in tower]
            for tower in (self.pi, self.vf)
        ]
        self._log_std_grad: Any = None if self.discrete else grad[id(policy.log_std)]
        self._rows = [(self.pi[lv][0].shape[0], self.vf[lv][0].shape[0]) for lv in range(self.merged)]
        # a merged level's two biases are adjacent: one gradient view; level 0's weights too (same input)
        self._mbias_grad = []
        for lv, (rp, rv) in enumerate(self._rows):
            o = offset[id(self.pi[lv][1])]
            self._mbias_grad.append(self.flat.grad[o : o + rp + rv])
        if self.merged:
            rows, n_in = sum(self._rows[0]), self.pi[0][0].shape[1]
            o, ob = offset[id(self.pi[0][0])], offset[id(self.pi[0][1])]
            self._w0 = self.flat.data[o : o + rows * n_in].view(rows, n_in)
            self._w0_grad = self.flat.grad[o : o + rows * n_in].view(rows, n_in)
            self._b0 = self.flat.data[ob : ob + rows][:, None]
        act = torch.ops.aten.threshold_backward.grad_input if self.relu else torch.ops.aten.tanh_backward.grad_input
        self._act_ = torch.relu_ if self.relu else torch.tanh_
        # the activation's derivative from its output (tanh' = 1 - tanh^2, relu' = [out > 0]), in place
        self._act_backward_ = (
            (lambda g, h: act(g, h, 0, grad_input=g)) if self.relu else (lambda g, h: act(g, h, grad_input=g))
        )
        self._np: Any = None  # (version, packed nets, log_std) of the numpy copy, rebuilt when the weights change
        self._ws: dict[int, list] = {}
        self._log_std: Any = None if self.discrete else policy.log_std.detach()
        # The per-sample arithmetic between the matrix products (softmax, log-probabilities, the loss's derivatives:
        # [actions, batch] arrays) runs in numpy on the CPU, where a call on a few hundred numbers costs a third of
        # a torch call; the products stay torch's. `xp` is that module, torch elsewhere (a GPU).
        self.xp = np if self.flat.data.device.type == "cpu" else torch
        if self.xp is np and not self.discrete:
            assert self._log_std is not None and self._log_std_grad is not None  # set for continuous actions above
            self._log_std = self._log_std.numpy()  # views of the flat storage: they follow every optimizer step
            self._log_std_grad = self._log_std_grad.numpy()
        self._xT: tuple[Any, Any] = (None, None)  # (x, x transposed and contiguous) of the last prepared batch
        self._aranges: dict[int, object] = {}
        # the all-merged path (equal depths): per deeper level its weights and gradient views, then the heads
        self.all_merged = self.depth[0] == self.depth[1] >= 1
        P, V = self._layers
        self._heads = [(P[-1][0], P[-1][1]), (V[-1][0], V[-1][1])]
        self._head_grads = [(P[-1][2], P[-1][3], P[-1][4]), (V[-1][2], V[-1][3], V[-1][4])]
        self._deeper_grads = [(P[lv][2], P[lv][4], V[lv][2], V[lv][4]) for lv in range(1, self.merged)]
        self._deeper_w = [(P[lv][0], P[lv][1], V[lv][0], V[lv][1]) for lv in range(1, self.merged)]
        # A deeper level whose two towers have the same shape (the usual [64, 64] both sides) is one batched
        # product of the pair instead of two products, forward and in both backward products: its weights, biases
        # and their gradients lie side by side in the flat tensors, so [2, rows, cols] views cover both towers.
        self._paired: list[Any] = [None] * len(self._deeper_w)
        for lv in range(1, self.merged):
            (rp, rv), below = self._rows[lv], self._rows[lv - 1]
            if rp != rv or below[0] != below[1]:
                continue
            ow, ob, cols = offset[id(self.pi[lv][0])], offset[id(self.pi[lv][1])], below[0]
            assert offset[id(self.vf[lv][0])] == ow + rp * cols and offset[id(self.vf[lv][1])] == ob + rp
            w3 = self.flat.data[ow : ow + 2 * rp * cols].view(2, rp, cols)
            self._paired[lv - 1] = (
                w3,
                self.flat.data[ob : ob + 2 * rp].view(2, rp, 1),
                self.flat.grad[ow : ow + 2 * rp * cols].view(2, rp, cols),
                w3.transpose(1, 2),
            )

    def __deepcopy__(self, memo: dict) -> None:
        # a deep-copied policy has parameters of its own, which this layout does not describe: the copy runs the
        # policy's autograd modules (an agent to evaluate, a frozen opponent)
        return None

    @staticmethod
    def supports(policy: Any) -> bool:
        """An ActorCritic whose shape this class writes out: flat observations, tanh or relu trunks, a Discrete or
        Box head (MultiDiscrete's branches go through the general modules and autograd)."""
        return (
            policy.flat_obs
            and policy.kwargs["activation"] in ("tanh", "relu")
            and getattr(policy, "nvec", None) is None
        )

    @classmethod
    def attach(cls, policy: Any) -> FastMLP | None:
        """The written-out twin of `policy` (laying its parameters out flat), or None where its shape needs the
        general modules. Call it where the policy is built, before any optimizer sees the parameters."""
        return cls(policy) if cls.supports(policy) else None

    # numpy inference -------------------------------------------------------------------------------------
    # Collection runs the network on a handful of rows per step, where numpy's per-call cost is a third of
    # torch's. The weights are copied when they change: transposed and contiguous, and where both towers have the
    # same depth and are narrow (at most PACK_MAX_WIDTH units a layer) packed block-diagonally into one network
    # whose last layer outputs [action logits or mean | value]. "Change" is the flat tensor's version counter
    # (in-place ops and load_state_dict move it) plus FlatParams.steps (torch's fused Adam kernel does not move the
    # counter); `refresh()` forces it (Collector calls it before each rollout, whatever optimizer changed the
    # weights).
    def refresh(self) -> None:
        """Copy the current weights into the numpy networks that `numpy_act` and `numpy_value` run."""
        self._numpy_nets(refresh=True)

    def _numpy_nets(self, refresh: bool = False) -> Any:
        version = (self.flat.data._version, self.flat.steps)
        if refresh or self._np is None or self._np[0] != version:

            def arr(t: torch.Tensor) -> np.ndarray:
                return t.detach().cpu().numpy()

            log_std = None if self.discrete else arr(self.policy.log_std).copy()
            activation = "relu" if self.relu else "tanh"
            if self.depth[0] == self.depth[1] and self.width <= PACK_MAX_WIDTH:
                layers = []
                for lv, ((wp, bp), (wv, bv)) in enumerate(zip(self.pi, self.vf)):
                    wp, wv = arr(wp), arr(wv)
                    if lv == 0:
                        w = np.ascontiguousarray(np.concatenate([wp, wv]).T)
                    else:
                        w = np.zeros((wp.shape[1] + wv.shape[1], wp.shape[0] + wv.shape[0]), np.float32)
                        w[: wp.shape[1], : wp.shape[0]] = wp.T
                        w[wp.shape[1] :, wp.shape[0] :] = wv.T
                    layers.append((w, np.concatenate([arr(bp), arr(bv)])))
                packed: tuple[NumpyMLP | None, ...] = (NumpyMLP(layers, activation), None)
            else:
                packed = tuple(
                    NumpyMLP([(np.ascontiguousarray(arr(w).T), arr(b).copy()) for w, b in t], activation)
                    for t in (self.pi, self.vf)
                )
            self._np = (version, packed, log_std)
        return self._np[1], self._np[2]

    def _np_forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:  # log_std: None when discrete
        (first, second), log_std = self._numpy_nets()
        if second is None:  # one packed network: [action logits or mean | value]
            out = first(x)
            return out[:, :-1], out[:, -1], log_std
        return first(x), second(x)[:, 0], log_std

    def numpy_act(self, obs: np.ndarray, rng: np.random.Generator, deterministic: bool = False) -> Any:
        """(action, value, log_prob) as numpy arrays for a batch of flat observations, sampling with `rng`."""
        x = (
            obs
            if isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.ndim == 2
            else np.asarray(obs, np.float32).reshape(len(obs), -1)
        )
        dist, value, log_std = self._np_forward(x)
        n = len(x)
        if self.discrete:
            z = dist - dist.max(1, keepdims=True)
            cdf = np.add.accumulate(np.exp(z), 1)  # np.cumsum's arithmetic, without its Python wrapper
            total = cdf[:, -1]
            if deterministic:
                action = dist.argmax(1)
            else:  # inverse-CDF sampling: the first index whose cumulative weight passes u * total
                u = rng.random(n, dtype=np.float32) * total
                action = np.minimum((cdf < u[:, None]).sum(1), dist.shape[1] - 1)
            logp = z[np.arange(n), action] - np.log(total)
            return action, value, logp
        std = np.exp(log_std)
        noise = np.zeros_like(dist) if deterministic else rng.standard_normal(dist.shape, dtype=np.float32)
        action = dist + noise * std
        logp = (-0.5 * noise * noise - log_std).sum(1) - 0.5 * LOG_2PI * dist.shape[1]
        return action, value, logp.astype(np.float32)

    def numpy_value(self, obs: np.ndarray) -> np.ndarray:
        return self._np_forward(np.asarray(obs, np.float32).reshape(len(obs), -1))[1]

    # torch inference (batch-major; collection on a GPU) ------------------------------------------------------
    def _tower(self, x: Array, layers: list) -> Array:
        h, last = x, len(layers) - 1
        for i, (w, b) in enumerate(layers):
            h = torch.addmm(b, h, w.t())
            if i < last:
                h = torch.relu(h) if self.relu else torch.tanh(h)
        return h

    @torch.no_grad()
    def forward(self, obs: Array) -> Any:
        x = obs.reshape(obs.shape[0], -1).float()
        return self._tower(x, self.pi), self._tower(x, self.vf)[:, 0]

    @torch.no_grad()
    def value(self, obs: Array) -> Array:
        return self._tower(obs.reshape(obs.shape[0], -1).float(), self.vf)[:, 0]

    # training: prepare once, then evaluate + backward per gradient step -----------------------------------
    def prepare(self, obs: Array, actions: Array) -> dict:
        """What the steps read of a batch, in the dtypes they need: {"x": [B, in] float, "a": actions (long
        indices, or [B, action_dim] float), "onehot": [B, n] float (discrete)}. Row-indexable like the rollout."""
        x = obs.reshape(obs.shape[0], -1).float().contiguous()
        # the first product reads x transposed: made contiguous once for the steps that read the whole batch
        self._xT = (x, x.t().contiguous())
        if self.discrete:
            a = actions.reshape(-1).long()
            onehot = torch.zeros(a.shape[0], self.policy.action_dim, dtype=x.dtype, device=x.device)
            out = {"x": x, "a": a, "onehot": onehot.scatter_(1, a[:, None], 1.0)}
        else:
            out = {"x": x, "a": actions.reshape(x.shape[0], -1).float().contiguous()}
        if self.xp is np:
            out.update({k: v.numpy() for k, v in out.items() if k != "x"})
        return out

    def to_xp(self, t: torch.Tensor) -> Array:
        """A per-sample tensor of the rollout as the per-sample arithmetic reads it (a numpy view on the CPU)."""
        return t.numpy() if self.xp is np else t

    def _arange(self, n: int) -> Array:
        r = self._aranges.get(n)
        if r is None:
            r = self._aranges[n] = np.arange(n) if self.xp is np else torch.arange(n, device=self.flat.data.device)
        return r

    def _workspace(self, B: int) -> list:
        """Per merged level: its activation buffer [rows, B] (both towers) with each tower's rows and their
        transposes, and a gradient buffer with each tower's rows, kept per batch size and reused by every step
        (a step's evaluate and backward finish before the next evaluate)."""
        ws = self._ws.get(B)
        if ws is None:
            ws = []
            d = self.flat.data
            for rp, rv in self._rows:
                h = torch.empty(rp + rv, B, dtype=d.dtype, device=d.device)
                g = torch.empty_like(h)
                # [2, rows, B] views of both towers' halves (equal halves only) for the batched products
                h3, g3 = (h.view(2, rp, B), g.view(2, rp, B)) if rp == rv else (None, None)
                ws.append(
                    (
                        h,
                        h[:rp],
                        h[rp:],
                        g,
                        g[:rp],
                        g[rp:],
                        h[:rp].t(),
                        h[rp:].t(),
                        h3,
                        g3,
                        None if h3 is None else h3.transpose(1, 2),
                    )
                )
            self._ws[B] = ws
        return ws

    def _forward_merged(self, x: Array) -> Any:
        """_forward_t where every level is merged (towers of equal depth, the usual net_arch): straight-line."""
        ws = self._ws.get(x.shape[0]) or self._workspace(x.shape[0])
        act_ = self._act_
        h, hp, hv = ws[0][:3]
        torch.addmm(self._b0, self._w0, self._xT[1] if self._xT[0] is x else x.t(), out=h)
        act_(h)
        for (wp, bp, wv, bv), pair, below, level in zip(self._deeper_w, self._paired, ws, ws[1:]):
            h = level[0]
            if pair is not None:
                torch.baddbmm(pair[1], pair[0], below[8], out=level[8])
            else:
                torch.addmm(bp, wp, hp, out=level[1])
                torch.addmm(bv, wv, hv, out=level[2])
            act_(h)
            hp, hv = level[1], level[2]
        (wh, bh), (wvh, bvh) = self._heads
        return torch.addmm(bh, wh, hp), torch.addmm(bvh, wvh, hv)[0], None, None

    def _backward_merged(self, x: Array, d_dist: Array, d_value: Array) -> None:
        ws = self._ws[x.shape[0]]
        back_, mm, sum_ = self._act_backward_, torch.mm, torch.sum
        (gwh, gbh, wht), (gwv, gbv, wvt) = self._head_grads
        top = ws[-1]
        mm(d_dist, top[6], out=gwh)
        sum_(d_dist, 1, out=gbh)
        mm(d_value, top[7], out=gwv)
        sum_(d_value, 1, out=gbv)
        mm(wht, d_dist, out=top[4])
        mm(wvt, d_value, out=top[5])
        for lv in range(len(ws) - 1, 0, -1):
            level, below = ws[lv], ws[lv - 1]
            g = back_(level[3], level[0])
            sum_(g, 1, out=self._mbias_grad[lv])
            pair = self._paired[lv - 1]
            if pair is not None:
                torch.bmm(level[9], below[10], out=pair[2])
                torch.bmm(pair[3], level[9], out=below[9])
                continue
            gwp, wpt, gwv_, wvt_ = self._deeper_grads[lv - 1]
            mm(level[4], below[6], out=gwp)
            mm(level[5], below[7], out=gwv_)
            mm(wpt, level[4], out=below[4])
            mm(wvt_, level[5], out=below[5])
        g = back_(ws[0][3], ws[0][0])
        sum_(g, 1, out=self._mbias_grad[0])
        mm(g, x, out=self._w0_grad)

    def _forward_t(self, x: Array) -> Any:
        """Feature-major forward: (dist [n, B], value [B], inputs of each pi layer, of each vf layer)."""
        P, V = self._layers
        xT = x.t()
        hp, hv = [xT], [xT]
        act_ = self._act_
        ws = self._workspace(x.shape[0])
        for lv in range(max(self.depth)):
            if lv < self.merged:
                h, h_p, h_v = ws[lv][:3]
                if lv == 0:
                    torch.addmm(self._b0, self._w0, xT, out=h)
                else:
                    torch.addmm(P[lv][1], P[lv][0], hp[-1], out=h_p)
                    torch.addmm(V[lv][1], V[lv][0], hv[-1], out=h_v)
                act_(h)
                hp.append(h_p)
                hv.append(h_v)
            else:
                for tower, hs in ((P, hp), (V, hv)):
                    if lv < len(tower) - 1:
                        hs.append(act_(torch.addmm(tower[lv][1], tower[lv][0], hs[-1])))
        dist = torch.addmm(P[-1][1], P[-1][0], hp[-1])
        value = torch.addmm(V[-1][1], V[-1][0], hv[-1])[0]
        return dist, value, hp, hv

    def _backward_t(self, x: Array, hp: Any, hv: Any, d_dist: Array, d_value: Array) -> None:
        """Gradients of every layer into the flat gradient, from d loss / d dist [n, B] and d loss / d value [1, B]."""
        P, V = self._layers
        back_ = self._act_backward_
        ws = self._workspace(x.shape[0])
        # d loss / d (output of the top hidden layer) of a tower, unmerged levels
        pending: list[torch.Tensor | None] = [None, None]
        for t, (tower, hs, d) in enumerate(((P, hp, d_dist), (V, hv, d_value))):
            _, _, gw, gb, wT = tower[-1]
            torch.mm(d, hs[-1].t(), out=gw)
            torch.sum(d, 1, out=gb)
            top = len(tower) - 2
            if top >= 0:
                if top < self.merged:
                    torch.mm(wT, d, out=ws[top][4 + t])
                else:
                    pending[t] = torch.mm(wT, d)
        for lv in range(max(self.depth) - 1, -1, -1):
            if lv < self.merged:
                h, g = ws[lv][0], ws[lv][3]
                back_(g, h)
                torch.sum(g, 1, out=self._mbias_grad[lv])
                if lv == 0:
                    torch.mm(g, x, out=self._w0_grad)
                    continue
                for t, (tower, hs) in enumerate(((P, hp), (V, hv))):
                    _, _, gw, _, wT = tower[lv]
                    dt = ws[lv][4 + t]
                    torch.mm(dt, hs[lv].t(), out=gw)
                    torch.mm(wT, dt, out=ws[lv - 1][4 + t])
            else:
                for t, (tower, hs) in enumerate(((P, hp), (V, hv))):
                    if lv >= len(tower) - 1:
                        continue
                    d = back_(pending[t], hs[lv + 1])
                    _, _, gw, gb, wT = tower[lv]
                    torch.sum(d, 1, out=gb)
                    torch.mm(d, x if lv == 0 else hs[lv].t(), out=gw)
                    if lv > 0:
                        if lv - 1 < self.merged:
                            torch.mm(wT, d, out=ws[lv - 1][4 + t])
                        else:
                            pending[t] = torch.mm(wT, d)

    def evaluate(self, batch: dict) -> Any:
        """(log_prob [B], value [B], ctx) of a prepared batch under the current parameters; ctx is what
        `entropy()` and `backward()` read. Every tensor involved is a detached view: no autograd graph, with or
        without torch.no_grad (whose per-call context costs as much as a small kernel)."""
        if self.all_merged:
            x = batch["x"]
            dist, value, hp, hv = self._forward_merged(x)
        else:
            dist, value, hp, hv = self._forward_t(batch["x"])
        xp = self.xp
        if xp is np:
            dist, value = dist.numpy(), value.numpy()
        n = dist.shape[1]
        if self.discrete:
            # (numpy's max/sum along the short axis of a [actions, batch] array cost twice an elementwise call)
            z = dist - (dist.max(0) if xp is np else xp.amax(dist, 0))
            e = xp.exp(z)
            total = e.sum(0)
            probs = e / total
            logp_all = z - xp.log(total)
            logp = logp_all[batch["a"], self._arange(n)]
            return logp, value, (batch, hp, hv, (logp_all, probs))
        log_std = self._log_std
        inv_std = xp.exp(-log_std)[:, None]
        z = (batch["a"].T - dist) * inv_std
        logp = (-0.5 * z * z - log_std[:, None]).sum(0) - 0.5 * LOG_2PI * dist.shape[0]
        # the Gaussian's entropy depends on log_std only, which the step is about to change: take it now
        entropy = (0.5 + 0.5 * LOG_2PI + log_std).sum()
        entropy = np.full(n, entropy, np.float32) if xp is np else entropy.expand(n)
        return logp, value, (batch, hp, hv, (z, inv_std, entropy))

    @staticmethod
    def dist_state(ctx: Any) -> Any:
        """The part of `evaluate`'s ctx that `entropy` reads (small: keep it, not the ctx, to average later)."""
        return ctx[3]

    def entropy(self, states: list) -> torch.Tensor:
        """Per-sample entropies of the distributions of one or more `evaluate` calls (their dist_state), in one
        pass: diagnostics average them once per update."""
        cat = self.xp.concatenate
        if self.discrete:
            logp_all = cat([s[0] for s in states], 1)
            probs = cat([s[1] for s in states], 1)
            return -(probs * logp_all).sum(0)
        return cat([s[2] for s in states])

    def backward(self, ctx: Any, g_logp: Array, g_value: Array, g_entropy: float = 0.0) -> None:
        """Set every parameter's gradient (in the flat gradient tensor) to d loss / d parameter, given d loss /
        d log_prob and d loss / d value per sample ([B] tensors) and d loss / d entropy (the same number for
        every sample)."""
        batch, hp, hv, state = ctx
        if self.discrete:
            logp_all, probs = state
            # d log p(a) / d logits = onehot(a) - p ;  d H / d logits = -p * (log p + H)
            d_dist = (batch["onehot"].T - probs) * g_logp
            if g_entropy != 0.0:
                entropy = -(probs * logp_all).sum(0)
                d_dist -= g_entropy * probs * (logp_all + entropy[None])
        else:
            z, inv_std, _ = state
            # d log p / d mean = z / std ;  d log p / d log_std = z^2 - 1 ;  d H / d log_std = 1 per sample
            d_dist = g_logp[None] * z * inv_std
            self.xp.sum(g_logp[None] * (z * z - 1), 1, out=self._log_std_grad)
            if g_entropy != 0.0:
                self._log_std_grad += g_entropy * z.shape[1]
        if self.xp is np:  # back to torch (views of the same memory) for the products
            d_dist, g_value = torch.from_numpy(np.ascontiguousarray(d_dist)), torch.from_numpy(g_value)
        if self.all_merged:
            self._backward_merged(batch["x"], d_dist, g_value[None])
        else:
            self._backward_t(batch["x"], hp, hv, d_dist, g_value[None])
