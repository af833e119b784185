"""Many episodes of a tabular Gymnasium env stepped at once, in arrays.

Taxi and FrozenLake describe their own dynamics as `env.unwrapped.P[s][a] = [(p, s', r, terminated), ...]`.
This turns that description into arrays and *samples* from it, exactly as the env's own `step` does, for a
batch of independent episodes. Learners stay model-free: they see only sampled transitions (s, a, r, s').
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprl.errors import UserError


class TabularBatch:
    def __init__(self, env: Any):
        u = env.unwrapped
        if not hasattr(u, "P") or not hasattr(u, "initial_state_distrib"):
            raise UserError(f"{env.spec.id if env.spec else env} is not a tabular env this learner can batch.")
        if getattr(u, "fickle_passenger", False):
            raise UserError("fickle_passenger changes the task during an episode; train Taxi without it.")
        self.n_states = int(env.observation_space.n)
        self.n_actions = int(env.action_space.n)
        outcomes = [u.P[s][a] for s in range(self.n_states) for a in range(self.n_actions)]
        k = max(len(o) for o in outcomes)
        # each (s, a)'s outcomes padded to k with impossible ones (p = 0), then one array per field
        rows = [list(o) + [(0.0, 0, 0.0, False)] * (k - len(o)) for o in outcomes]
        shape = (self.n_states, self.n_actions, k)
        p, s2, r, t = zip(*(o for row in rows for o in row))
        probs = np.array(p, dtype=np.float64).reshape(shape)
        self.next_s = np.array(s2, dtype=np.int64).reshape(shape)
        self.reward = np.array(r, dtype=np.float64).reshape(shape)
        self.term = np.array(t, dtype=bool).reshape(shape)
        self.cum_p = np.cumsum(probs, axis=2) / probs.sum(axis=2, keepdims=True)  # the padding's entries are 1
        self.stochastic = k > 1
        # the one outcome of a deterministic env (Taxi, FrozenLake no_slippery), as 2-d tables
        self.next_s1, self.reward1, self.term1 = self.next_s[..., 0], self.reward[..., 0], self.term[..., 0]
        self.init_cum = np.cumsum(np.asarray(u.initial_state_distrib, dtype=np.float64))
        self.init_cum /= self.init_cum[-1]

    def reset(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # np.minimum, not .clip(max=...): the same numbers without clip's Python-level checks (a reset per step)
        return np.minimum(np.searchsorted(self.init_cum, rng.random(n), side="right"), self.n_states - 1)

    def step(self, s: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.stochastic:  # no draw: the env's own step draws none either for a single outcome
            return self.next_s1[s, a], self.reward1[s, a], self.term1[s, a]
        i = np.minimum((rng.random(len(s))[:, None] >= self.cum_p[s, a]).sum(1), self.cum_p.shape[2] - 1)
        return self.next_s[s, a, i], self.reward[s, a, i], self.term[s, a, i]
