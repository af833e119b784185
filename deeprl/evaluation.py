"""The course's evaluation protocol, the one function every command uses.

- episodes: the env's own count (10 by default; Taxi and FrozenLake 100, Taxi with the course's 100 fixed seeds);
- an episode ends when the env terminates or truncates, or at the spec's step cap (99 for the tabular envs);
  truncated episodes count with the return they reached (the course once dropped them and scored wrong);
- actions are deterministic unless the env spec says otherwise (Atari samples, as huggingface_sb3 evaluates);
- the return is the original env's undiscounted sum: no reward normalization or clipping at evaluation;
- result = mean_reward - std_reward, with the population std (numpy's default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.envs import make_env, resolve_env

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.agent import Agent
    from deeprl.envs import EnvSpec


def play_episode(
    agent: Agent,
    env: gym.Env,
    *,
    seed: int | None,
    max_steps: int | None,
    deterministic: bool,
    on_step: Callable[[Any], None] | None = None,
) -> tuple[float, int, bool]:
    """One episode: (return, length, truncated). `on_step` sees the env after each reset and step (for videos)."""
    obs, _ = env.reset(seed=seed)
    if hasattr(agent, "reset"):
        agent.reset()
    if on_step:
        on_step(env)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=deterministic))
        if hasattr(agent, "observe"):  # an agent that conditions on the rewards (a Decision Transformer)
            agent.observe(reward)
        total += float(reward)
        steps += 1
        if on_step:
            on_step(env)
        if terminated:
            return total, steps, False
        if truncated or (max_steps is not None and steps >= max_steps):
            return total, steps, True


def episode_seeds(spec: EnvSpec, n_eval_episodes: int, seed: int) -> list[int | None]:
    if spec.eval_seeds is not None and n_eval_episodes <= len(spec.eval_seeds):
        return list(spec.eval_seeds[:n_eval_episodes])
    return [seed + i for i in range(n_eval_episodes)]


def summarize(returns: Sequence[float] | np.ndarray, *, env_id: str, deterministic: bool, **extra: Any) -> dict:
    figures = np.asarray(returns, dtype=np.float64)
    mean, std = float(figures.mean()), float(figures.std())
    return {
        "env_id": env_id,
        "mean_reward": mean,
        "std_reward": std,
        "result": mean - std,
        "n_eval_episodes": int(figures.size),
        "is_deterministic": bool(deterministic),
        "eval_datetime": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def evaluate(
    agent: Agent,
    *,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    n_eval_episodes: int | None = None,
    seed: int = 0,
    deterministic: bool | None = None,
    env: gym.Env | None = None,
) -> dict:
    """Evaluate `agent` by the course protocol and return the figures (see module doc)."""
    env_id = env_id or agent.env_id
    spec, kwargs = resolve_env(env_id, agent.env_kwargs if env_kwargs is None else env_kwargs)
    n = int(n_eval_episodes or spec.n_eval_episodes)
    det = spec.deterministic if deterministic is None else deterministic
    own_env = env is None
    env = env or make_env(spec.course_id, kwargs, training=False)
    returns, lengths, truncations = [], [], 0
    try:
        for ep_seed in episode_seeds(spec, n, seed):
            ret, length, truncated = play_episode(
                agent, env, seed=ep_seed, max_steps=spec.eval_max_steps, deterministic=det
            )
            returns.append(ret)
            lengths.append(length)
            truncations += truncated
    finally:
        if own_env:
            env.close()
    return summarize(
        returns,
        env_id=spec.course_id,
        deterministic=det,
        env_tag=spec.card_tag(kwargs),
        env_kwargs=kwargs,
        seed=seed,
        episode_rewards=returns,
        episode_lengths=lengths,
        n_truncated=truncations,
    )
