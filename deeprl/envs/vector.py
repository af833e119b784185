"""Vectorized envs for training: Gymnasium's sync/async vector envs over `make_env` (training wrappers on)."""

from __future__ import annotations

import copy
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from deeprl.envs.registry import make_env, resolve_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection


def make_vec_env(
    env_id: str,
    n_envs: int,
    *,
    seed: int = 0,
    env_kwargs: dict | None = None,
    training: bool = True,
    vectorization: str = "sync",
    render_mode: str | None = None,
) -> Any:  # a gymnasium VectorEnv (gymnasium is imported inside)
    """`n_envs` copies of the course env in one Gymnasium VectorEnv, reset with seeds seed..seed+n-1.

    vectorization: "sync" (one process; best for cheap envs on 2 cores), "async" (one process per env),
    "workers" (one process per CPU core, each stepping its share of the envs: for costly envs like Box2D),
    "native" (the env's own array implementation, e.g. Gymnasium's CartPoleVectorEnv; an error where there is
    none) or "auto" (native where it exists and nothing asks for rendering or kwargs, else sync).
    """
    import gymnasium as gym

    spec, kwargs = resolve_env(env_id, env_kwargs)
    if vectorization not in ("sync", "async", "workers", "native", "auto"):
        from deeprl.errors import UserError

        raise UserError(f"Unknown vectorization '{vectorization}'; use sync, async, workers, native or auto.")
    if vectorization in ("native", "auto"):
        native = NATIVE.get(spec.course_id)
        native_venv = native(n_envs) if native is not None and render_mode is None and not kwargs else None
        if native_venv is not None:
            native_venv.reset(seed=seed)
            return native_venv
        if vectorization == "native":
            from deeprl.errors import UserError

            raise UserError(
                f"{spec.course_id} has no native vectorized version (with these options); "
                "use vectorization sync or async."
            )
        vectorization = "sync"
    make_env(spec.course_id, kwargs).close()  # validate id and kwargs here, with our error sentences
    fns = [lambda: make_env(spec.course_id, kwargs, training=training, render_mode=render_mode) for _ in range(n_envs)]
    venv: gym.vector.VectorEnv | WorkerVectorEnv
    if vectorization == "workers":
        import os

        native = NATIVE.get(spec.course_id) if render_mode is None and not kwargs else None
        venv = WorkerVectorEnv(fns, min(n_envs, os.cpu_count() or 1), native=native)
    elif vectorization == "async":
        venv = gym.vector.AsyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    else:
        venv = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    venv.reset(seed=seed)
    return venv


class SameStepCartPole(gym.vector.VectorWrapper):
    """Gymnasium's array-based CartPole made to reset finished envs in the same step, like our other vector envs
    (it natively resets them on the NEXT call, which would hand the learner a dummy transition after every
    episode)."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self.metadata = {**env.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.core: Any = env.unwrapped  # the CartPoleVectorEnv, whose arrays are read below

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        actions = np.asarray(actions)
        if (
            actions.shape != (self.num_envs,)
            or actions.dtype.kind not in "iu"
            or actions.max() > 1
            or actions.min() < 0
        ):
            raise AssertionError(f"{actions!r} ({type(actions)}) invalid")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = terminated | truncated
        if np.count_nonzero(done):
            core = self.core
            # the same draw the core's own reset uses: uniform(low, high) per state variable
            core.state[:, done] = core.np_random.uniform(low=core.low, high=core.high, size=(4, int(done.sum())))
            core.steps[done] = 0
            core.prev_done[done] = False
            info = {**info, "final_obs": obs.copy(), "_final_obs": done}
            obs = obs.copy()
            obs[done] = core.state[:, done].T.astype(np.float32)
        return obs, reward, terminated, truncated, info


class _UncheckedMultiDiscrete(gym.spaces.MultiDiscrete):
    """The core's action space without its per-step `contains` check (SameStepCartPole checks the actions)."""

    def contains(self, x: Any) -> bool:
        return True


def _same_step_cartpole(n_envs: int) -> gym.vector.VectorEnv | None:
    """Gymnasium's array-based CartPole (one numpy step for all envs, ~10x a SyncVectorEnv of CartPoles), resetting
    in the same step (SameStepCartPole); None where this Gymnasium's CartPoleVectorEnv has another shape."""
    env = gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point")
    core = env.unwrapped
    if not all(hasattr(core, a) for a in ("state", "steps", "prev_done", "low", "high")):
        return None  # a Gymnasium whose CartPoleVectorEnv changed shape: fall back to sync
    # The core asserts action_space.contains(actions) on every step, a generic MultiDiscrete check that costs as
    # much as the physics of 8 carts. The wrapper checks the same thing (integers in {0, 1}) in two array ops.
    space = core.action_space
    if type(space) is gym.spaces.MultiDiscrete:
        core.action_space = copy.copy(space)  # the same random generator, only the check goes
        core.action_space.__class__ = _UncheckedMultiDiscrete
    return SameStepCartPole(env)


# course id -> builder of a native SAME_STEP vector env (n_envs) -> VectorEnv | None
def _arenas(module: str, env_class: str, core_class: str) -> Callable[[int], gym.vector.VectorEnv]:
    """A NATIVE builder for one of our arena envs: all n arenas in one core (deeprl.envs.arena.ArenaVectorEnv)."""

    def build(n_envs: int) -> gym.vector.VectorEnv:
        import importlib

        from deeprl.envs.arena import ArenaVectorEnv

        mod = importlib.import_module(module)
        return ArenaVectorEnv(getattr(mod, env_class)(), getattr(mod, core_class), n_envs)

    return build


def _huggy(n_envs: int) -> gym.vector.VectorEnv:
    from deeprl.envs.huggy import HuggyVectorEnv

    return HuggyVectorEnv(n_envs)


NATIVE = {
    "CartPole-v1": _same_step_cartpole,
    "Pyramids": _arenas("deeprl.envs.pyramids", "PyramidsEnv", "PyramidsCore"),
    "SnowballTarget": _arenas("deeprl.envs.snowball", "SnowballTargetEnv", "SnowballCore"),
    "Huggy": _huggy,
}


def _share(env_fns: list[Callable[[], Any]], native: Callable[[int], Any] | None) -> Any:
    """A share of the envs in one vector env: the env's native one where `native` builds it, else a SyncVectorEnv."""
    import gymnasium as gym

    venv = native(len(env_fns)) if native is not None else None
    if venv is None:
        venv = gym.vector.SyncVectorEnv(env_fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    return venv


def _finals(info: dict) -> dict[int, Any] | None:
    """{env index: last observation} of the episodes a step ended, from a SAME_STEP vector env's info."""
    mask = info.get("_final_obs")
    if mask is None or not mask.any():
        return None
    return {int(i): info["final_obs"][i] for i in mask.nonzero()[0]}


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread inside the block (held back, not lost: it arrives when the block ends). A
    process started inside it begins with SIGINT blocked, forked or spawned, until it sets its own disposition: a
    Ctrl-C to the process group while an env worker (here, or deeprl.sampler's) still starts cannot run the trainer's
    handler or raise KeyboardInterrupt there."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows has no signal masks (nor process groups for Ctrl-C)
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_main(conn: Connection, env_fns: list[Callable[[], Any]], native: Callable[[int], Any] | None) -> None:
    """A worker process: its share of the envs (`_share`), driven by (command, data) messages. It ignores Ctrl-C,
    which reaches the whole process group: the trainer acts on it (a forked worker would otherwise run the trainer's
    own handler and print its message again) and then closes the workers, or they see the pipe close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    venv = _share(env_fns, native)
    try:
        while True:
            cmd, data = conn.recv()
            if cmd == "step":
                obs, reward, terminated, truncated, info = venv.step(data)
                conn.send((obs, reward, terminated, truncated, _finals(info)))
            elif cmd == "reset":
                conn.send(venv.reset(seed=data)[0])
            elif cmd == "close":
                break
    except EOFError:
        pass
    finally:
        venv.close()
        conn.close()


class WorkerVectorEnv:
    """The envs in `n_workers` contiguous shares, one per core: the acting process steps the first share itself and
    a worker process each of the others, every share in the env's native vector env where `native` builds one
    (NATIVE), else a SyncVectorEnv.

    Gymnasium's AsyncVectorEnv runs one process per env: 16 LunarLanders on 2 cores means 16 pipe round trips and
    context switches per step, which cost more than the physics. One share per core keeps both cores stepping
    Box2D. The acting process takes a share because it would otherwise sleep while the workers step and wake them
    twice a step: on 2 cores Huggy's 20 dogs stepped in 2.2 to 3.3 ms with two workers against 1.5 ms of physics
    per share. SAME_STEP autoreset; info carries only final_obs/_final_obs.
    """

    steps_elsewhere = True  # the acting process should leave the other cores to the workers (deeprl.rollout)

    def __init__(self, env_fns: list, n_workers: int, native: Callable[[int], Any] | None = None):
        import multiprocessing as mp

        import gymnasium as gym
        import numpy as np

        self.num_envs = len(env_fns)
        n_workers = max(1, min(n_workers, self.num_envs))
        bounds = np.linspace(0, self.num_envs, n_workers + 1).astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        probe = env_fns[0]()
        self.single_observation_space, self.single_action_space = probe.observation_space, probe.action_space
        self.metadata = {**probe.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.render_mode = None
        probe.close()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
        self.conns, self.procs = [], []
        self.closed = False
        for sl in self.slices[1:]:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, env_fns[sl], native), daemon=True)
            with sigint_blocked():  # until _worker_main ignores it
                proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.local = _share(env_fns[self.slices[0]], native)  # after the forks: no child holds a copy of it

    @property
    def unwrapped(self) -> WorkerVectorEnv:
        return self

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        import numpy as np

        for sl, conn in zip(self.slices[1:], self.conns):
            conn.send(("reset", None if seed is None else seed + sl.start))
        first = self.local.reset(seed=seed)[0]
        return np.concatenate([first] + [conn.recv() for conn in self.conns]), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        import numpy as np

        for sl, conn in zip(self.slices[1:], self.conns):
            conn.send(("step", actions[sl]))
        obs, reward, terminated, truncated, info = self.local.step(actions[self.slices[0]])
        parts = [(obs, reward, terminated, truncated, _finals(info))] + [conn.recv() for conn in self.conns]
        obs = np.concatenate([p[0] for p in parts])
        reward = np.concatenate([p[1] for p in parts])
        terminated = np.concatenate([p[2] for p in parts])
        truncated = np.concatenate([p[3] for p in parts])
        info = {}
        if any(p[4] for p in parts):
            final = np.empty(self.num_envs, dtype=object)
            mask = np.zeros(self.num_envs, dtype=bool)
            for sl, p in zip(self.slices, parts):
                for i, o in (p[4] or {}).items():
                    final[sl.start + i] = o
                    mask[sl.start + i] = True
            info = {"final_obs": final, "_final_obs": mask}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        local = getattr(self, "local", None)
        if local is not None:
            local.close()
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
