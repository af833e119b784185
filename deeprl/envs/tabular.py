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
        k = max(len(u.P[s][a]) for s in range(self.n_states) for a in range(self.n_actions))
        shape = (self.n_states, self.n_actions, k)
        self.cum_p = np.ones(shape)
        self.next_s = np.zeros(shape, dtype=np.int64)
        self.reward = np.zeros(shape)
        self.term = np.zeros(shape, dtype=bool)
        for s in range(self.n_states):
            for a in range(self.n_actions):
                outcomes = u.P[s][a]
                probs = np.array([o[0] for o in outcomes], dtype=np.float64)
                for i, (_, s2, r, t) in enumerate(outcomes):
                    self.next_s[s, a, i], self.reward[s, a, i], self.term[s, a, i] = s2, r, t
                self.cum_p[s, a, : len(outcomes)] = np.cumsum(probs) / probs.sum()
        self.stochastic = k > 1
        self.init_cum = np.cumsum(np.asarray(u.initial_state_distrib, dtype=np.float64))
        self.init_cum /= self.init_cum[-1]

    def reset(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.searchsorted(self.init_cum, rng.random(n), side="right").clip(max=self.n_states - 1)

    def step(self, s: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.stochastic:
            i = (rng.random(len(s))[:, None] >= self.cum_p[s, a]).sum(1).clip(max=self.cum_p.shape[2] - 1)
        else:
            i = np.zeros(s.shape[0], dtype=np.int64)
        return self.next_s[s, a, i], self.reward[s, a, i], self.term[s, a, i]
