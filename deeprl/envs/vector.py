"""Vectorized envs for training: Gymnasium's sync/async vector envs over `make_env` (training wrappers on)."""

from __future__ import annotations

from deeprl.envs.registry import make_env, resolve_env


def make_vec_env(env_id: str, n_envs: int, *, seed: int = 0, env_kwargs: dict | None = None, training: bool = True,
                 vectorization: str = "sync", render_mode: str | None = None):
    """`n_envs` copies of the course env in one Gymnasium VectorEnv, reset with seeds seed..seed+n-1.

    vectorization: "sync" (one process; best for cheap envs on 2 cores) or "async" (one process per env).
    """
    import gymnasium as gym

    spec, kwargs = resolve_env(env_id, env_kwargs)
    make_env(spec.course_id, kwargs).close()  # validate id and kwargs here, with our error sentences
    fns = [lambda: make_env(spec.course_id, kwargs, training=training, render_mode=render_mode)
           for _ in range(n_envs)]
    if vectorization == "async":
        venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    else:
        venv = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    venv.reset(seed=seed)
    return venv
