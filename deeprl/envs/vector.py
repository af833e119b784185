"""Vectorized envs for training: Gymnasium's sync/async vector envs over `make_env` (training wrappers on)."""

from __future__ import annotations

from deeprl.envs.registry import make_env, resolve_env


def make_vec_env(env_id: str, n_envs: int, *, seed: int = 0, env_kwargs: dict | None = None, training: bool = True,
                 vectorization: str = "sync", render_mode: str | None = None):
    """`n_envs` copies of the course env in one Gymnasium VectorEnv, reset with seeds seed..seed+n-1.

    vectorization: "sync" (one process; best for cheap envs on 2 cores), "async" (one process per env),
    "native" (the env's own array implementation, e.g. Gymnasium's CartPoleVectorEnv; an error where there is
    none) or "auto" (native where it exists and nothing asks for rendering or kwargs, else sync).
    """
    import gymnasium as gym

    spec, kwargs = resolve_env(env_id, env_kwargs)
    if vectorization not in ("sync", "async", "native", "auto"):
        from deeprl.errors import UserError

        raise UserError(f"Unknown vectorization '{vectorization}'; use sync, async, native or auto.")
    if vectorization in ("native", "auto"):
        native = NATIVE.get(spec.course_id)
        venv = native(n_envs) if native is not None and render_mode is None and not kwargs else None
        if venv is not None:
            venv.reset(seed=seed)
            return venv
        if vectorization == "native":
            from deeprl.errors import UserError

            raise UserError(f"{spec.course_id} has no native vectorized version (with these options); "
                            "use vectorization sync or async.")
        vectorization = "sync"
    make_env(spec.course_id, kwargs).close()  # validate id and kwargs here, with our error sentences
    fns = [lambda: make_env(spec.course_id, kwargs, training=training, render_mode=render_mode)
           for _ in range(n_envs)]
    if vectorization == "async":
        venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    else:
        venv = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    venv.reset(seed=seed)
    return venv


def _same_step_cartpole(n_envs: int):
    """Gymnasium's array-based CartPole (one numpy step for all envs, ~10x a SyncVectorEnv of CartPoles), made to
    reset finished envs in the same step like our other vector envs: it natively resets them on the NEXT call,
    which would hand the learner a dummy transition after every episode."""
    import gymnasium as gym
    import numpy as np

    class SameStepCartPole(gym.vector.VectorWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.metadata = {**env.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
            self.core = env.unwrapped

        def step(self, actions):
            obs, reward, terminated, truncated, info = self.env.step(actions)
            done = terminated | truncated
            if done.any():
                core = self.core
                # the same draw the core's own reset uses: uniform(low, high) per state variable
                core.state[:, done] = core.np_random.uniform(low=core.low, high=core.high, size=(4, int(done.sum())))
                core.steps[done] = 0
                core.prev_done[done] = False
                info = {**info, "final_obs": obs.copy(), "_final_obs": done}
                obs = obs.copy()
                obs[done] = core.state[:, done].T.astype(np.float32)
            return obs, reward, terminated, truncated, info

    env = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    core = env.unwrapped
    if not all(hasattr(core, a) for a in ("state", "steps", "prev_done", "low", "high")):
        return None  # a Gymnasium whose CartPoleVectorEnv changed shape: fall back to sync
    return SameStepCartPole(env)


# course id -> builder of a native SAME_STEP vector env (n_envs) -> VectorEnv | None
NATIVE = {"CartPole-v1": _same_step_cartpole}
