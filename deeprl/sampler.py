"""The sampler of asynchronous PPO (deeprl.algos.appo), built the way Sample Factory builds its own: rollout worker
processes step the envs and write what they see into shared memory; the trainer's process batches the observations
of every env that is waiting into one forward pass, writes the actions back and tells the worker to go on; finished
trajectories go to the learner, whose weights come back through shared memory.

Named interfaces (the algorithm file uses nothing else of this module):

- `SharedArrays`: named numpy arrays over one block of shared memory (a multiprocessing RawArray: no resource
  tracker, handed to a spawned child as a process argument); `views()` in the child gives the same arrays.
- `Sampler`: `n_workers` processes, each stepping `envs_per_worker` envs in `splits` alternating groups (double
  buffering: while the policy computes one group's actions the worker steps the other group, so neither waits
  for the other). `ready(timeout)` gives the groups whose step results are in shared memory, `step(groups)` sends
  them on after their actions are written; `close()` ends every process and its envs. A worker that dies or fails
  raises `WorkerDied` with one sentence.
- `WeightChannel`: the learner publishes its weights (one flat float32 vector and a version number in shared
  memory); an actor pulls them when the version has moved.
- `Trajectories`: a pool of rollout-length trajectory slots that the inference step fills env by env (observation,
  action, log-probability, value, recurrent state at the start, the policy version that acted) and hands over
  when an env has `rollout` steps and the observation after them (its bootstrap).

Workers step envs built by `deeprl.envs.make_env(..., training=True)` with autoreset: an episode's end is `done`
(terminated or truncated, as Sample Factory counts both), and the next observation is the new episode's first.
The return the worker reports for a finished episode is `info["true_objective"]` where the env gives one (Doom's
unshaped return), else the sum of its rewards.

Workers ignore SIGINT (Ctrl-C reaches the whole process group; the trainer decides how to stop; they start with it
blocked, so a Ctrl-C while a worker still imports cannot print a traceback from inside it), end on SIGTERM
with their envs closed, and end on their own when the trainer's end of their pipe closes, so a killed trainer
leaves no worker behind.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import Any

import numpy as np

from deeprl.envs.vector import sigint_blocked

Layout = dict[str, tuple[tuple[int, ...], str, int]]  # name -> (shape, dtype, byte offset)

_ALIGN = 64


def _layout(specs: dict[str, tuple[tuple[int, ...], Any]]) -> tuple[Layout, int]:
    layout: Layout = {}
    offset = 0
    for name, (shape, dtype) in specs.items():
        dt = np.dtype(dtype)
        layout[name] = (tuple(int(s) for s in shape), dt.str, offset)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        offset += (size + _ALIGN - 1) // _ALIGN * _ALIGN
    return layout, max(offset, _ALIGN)


def views(raw: Any, layout: Layout) -> dict[str, np.ndarray]:
    """The arrays of a SharedArrays block from its raw memory and layout (in the process that made it or a child)."""
    buffer = memoryview(raw).cast("B")
    return {
        name: np.ndarray(shape, dtype=np.dtype(dtype), buffer=buffer, offset=offset)
        for name, (shape, dtype, offset) in layout.items()
    }


class SharedArrays:
    """Named arrays in one block of shared memory: `SharedArrays({"obs": ((8, 72, 128, 3), np.uint8), ...}, ctx)`.
    Pass `.raw` and `.layout` to a child process and call `views(raw, layout)` there."""

    def __init__(self, specs: dict[str, tuple[tuple[int, ...], Any]], ctx: Any = None):
        ctx = ctx or mp.get_context("spawn")
        self.layout, size = _layout(specs)
        self.raw = ctx.RawArray("b", size)  # zero-filled
        self.arrays = views(self.raw, self.layout)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


class WorkerDied(RuntimeError):
    """A rollout worker ended on its own; the message is one sentence for the user."""


def _end_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds through the worker's finally: its envs (and Doom's engine process) are closed


def _worker(
    index: int,
    env_id: str,
    env_kwargs: dict,
    envs_per_worker: int,
    splits: int,
    seed: int,
    raw: Any,
    layout: Layout,
    conn: Connection,
) -> None:
    """A rollout worker's process: step the envs of one group whenever the trainer says so."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_on_sigterm)
    from deeprl.envs import make_env

    arrays = views(raw, layout)
    obs_a, act_a, rew_a, done_a = arrays["obs"], arrays["actions"], arrays["rewards"], arrays["dones"]
    ret_a, len_a = arrays["episode_return"], arrays["episode_length"]
    first = index * envs_per_worker
    envs: list[Any] = []
    try:
        sums, lengths = np.zeros(envs_per_worker), np.zeros(envs_per_worker, dtype=np.int64)
        for e in range(envs_per_worker):
            envs.append(make_env(env_id, env_kwargs, training=True))
            obs_a[first + e] = envs[e].reset(seed=seed + first + e)[0]
        for s in range(splits):
            conn.send(s)
        per_split = envs_per_worker // splits
        while True:
            split = conn.recv()
            if split is None:
                break
            for e in range(split * per_split, (split + 1) * per_split):
                g = first + e
                obs, reward, terminated, truncated, info = envs[e].step(act_a[g])
                sums[e] += float(reward)
                lengths[e] += 1
                done = terminated or truncated
                if done:  # the finished episode's figures, read by the trainer with this step's `dones`
                    ret_a[g] = float(info.get("true_objective", sums[e]))
                    len_a[g] = lengths[e]
                    sums[e], lengths[e] = 0.0, 0
                    obs = envs[e].reset()[0]
                obs_a[g] = obs
                rew_a[g] = reward
                done_a[g] = done
            conn.send(split)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the trainer is gone: end quietly
    except Exception as exc:  # an env that fails: the trainer reports it in one sentence
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))
        except (OSError, ValueError):
            pass
    finally:
        for env in envs:
            try:
                env.close()
            except Exception:  # noqa: S110  (closing what is left; the error that matters was reported)
                pass


@dataclass(frozen=True)
class Group:
    """One worker's half of its envs: the global env indices [start, stop)."""

    worker: int
    split: int
    start: int
    stop: int


class Sampler:
    """See the module's docstring. Observations, actions, rewards and ends live in `self.arrays`, one row per env."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict,
        obs_shape: tuple[int, ...],
        obs_dtype: Any,
        *,
        n_workers: int,
        envs_per_worker: int,
        splits: int = 2,
        seed: int = 0,
    ):
        if envs_per_worker % splits:
            raise ValueError(f"envs_per_worker ({envs_per_worker}) must be a multiple of splits ({splits})")
        self.n_workers, self.envs_per_worker, self.splits = n_workers, envs_per_worker, splits
        self.n_envs = n_workers * envs_per_worker
        per_split = envs_per_worker // splits
        self.groups = [
            Group(w, s, w * envs_per_worker + s * per_split, w * envs_per_worker + (s + 1) * per_split)
            for w in range(n_workers)
            for s in range(splits)
        ]
        ctx = mp.get_context("spawn")  # a forked child would inherit torch's thread pools half-made
        n = self.n_envs
        self.shared = SharedArrays(
            {
                "obs": ((n, *obs_shape), obs_dtype),
                "actions": ((n,), np.int64),
                "rewards": ((n,), np.float32),
                "dones": ((n,), np.bool_),
                "episode_return": ((n,), np.float64),
                "episode_length": ((n,), np.int64),
            },
            ctx,
        )
        self.arrays = self.shared.arrays
        self.conns: list[Connection] = []
        self.processes: list[Any] = []
        for w in range(n_workers):
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=_worker,
                args=(
                    w,
                    env_id,
                    env_kwargs,
                    envs_per_worker,
                    splits,
                    seed,
                    self.shared.raw,
                    self.shared.layout,
                    theirs,
                ),
                name=f"deeprl-rollout-{w}",
                daemon=True,
            )
            with sigint_blocked():  # the child inherits the block through exec, until _worker ignores SIGINT
                process.start()
            theirs.close()
            self.conns.append(ours)
            self.processes.append(process)
        self._worker_of = {id(c): w for w, c in enumerate(self.conns)}

    def _receive(self, worker: int) -> Group:
        conn = self.conns[worker]
        try:
            message = conn.recv()
        except (EOFError, ConnectionResetError, OSError):
            process = self.processes[worker]
            process.join(timeout=1.0)
            code = process.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
            raise WorkerDied(f"Rollout worker {worker} (pid {process.pid}) {how}, so the run stops.") from None
        if isinstance(message, tuple):
            raise WorkerDied(f"Rollout worker {worker}'s env failed ({message[1]}), so the run stops.")
        return self.groups[worker * self.splits + int(message)]

    def ready(self, timeout: float | None = None) -> list[Group]:
        """The groups whose results are in shared memory (waits up to `timeout` seconds for the first)."""
        out = []
        for conn in wait(self.conns, timeout):
            assert isinstance(conn, Connection)
            worker = self._worker_of[id(conn)]
            out.append(self._receive(worker))
            while conn.poll():
                out.append(self._receive(worker))
        return out

    def ready_one(self, group: Group, timeout: float) -> bool:
        """Wait up to `timeout` for this one group (the synchronous mode's fixed order); True once it is in."""
        conn = self.conns[group.worker]
        if not conn.poll(timeout):
            return False
        got = self._receive(group.worker)
        if got != group:  # each worker answers its groups in the order they were sent
            raise RuntimeError(f"worker {group.worker} answered group {got.split}, not {group.split}")
        return True

    def step(self, groups: Iterable[Group]) -> None:
        """Send each group on: its actions are in `arrays["actions"]`."""
        for group in groups:
            try:
                self.conns[group.worker].send(group.split)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self._receive(group.worker)  # raises WorkerDied with the exit code

    def close(self, timeout: float = 10.0) -> None:
        """End every worker (and the envs in it): ask, then SIGTERM, then SIGKILL."""
        for conn in self.conns:
            try:
                conn.send(None)
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        for process in self.processes:
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.conns:
            conn.close()
        self.conns, self.processes = [], []

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]


class WeightChannel:
    """The learner's weights in shared memory: `publish(state)` copies a state dict's tensors into one flat float32
    vector and moves the version on; `pull(have)` returns (version, state) when the version is newer than `have`,
    else (have, None). Readers never see half a write (a lock guards the copy)."""

    def __init__(self, state: dict[str, Any], ctx: Any = None):
        ctx = ctx or mp.get_context("spawn")
        self.shapes = {k: tuple(v.shape) for k, v in state.items()}
        self.size = sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes.values())
        self.raw = ctx.RawArray("f", max(self.size, 1))
        self._version = ctx.RawValue("q", -1)
        self._lock = ctx.Lock()

    def __getstate__(self) -> dict:  # picklable into a spawned child (the RawArray, value and lock travel)
        return dict(self.__dict__)

    @property
    def version(self) -> int:
        return int(self._version.value)

    def publish(self, state: dict[str, Any], version: int) -> None:
        flat = np.frombuffer(self.raw, dtype=np.float32, count=self.size)
        with self._lock:
            offset = 0
            for k, shape in self.shapes.items():
                n = int(np.prod(shape, dtype=np.int64))
                flat[offset : offset + n] = np.asarray(state[k].detach().cpu(), dtype=np.float32).ravel()
                offset += n
            self._version.value = int(version)

    def pull(self, have: int) -> tuple[int, dict[str, np.ndarray] | None]:
        if self._version.value <= have:
            return have, None
        flat = np.frombuffer(self.raw, dtype=np.float32, count=self.size)
        with self._lock:
            version = int(self._version.value)
            out, offset = {}, 0
            for k, shape in self.shapes.items():
                n = int(np.prod(shape, dtype=np.int64))
                out[k] = flat[offset : offset + n].reshape(shape).copy()
                offset += n
        return version, out


class Trajectories:
    """Rollout-length trajectory slots, filled by the inference step and emptied by the learner.

    A slot holds `rollout` steps of one env and the observation after them: obs [T+1], values [T+1] (the last is
    the bootstrap), actions, log_probs, rewards, dones, versions [T], and the recurrent state h0 before step 0.
    `record(envs, ...)` takes one inference step of a batch of envs; a slot whose env has stepped T times and then
    been observed once more is complete (`take(n)` hands over n of them). Slots are few (those in flight and
    `capacity` complete ones waiting): `record` returns False and records nothing when it would need a free slot
    that the learner has not given back yet, and the caller waits and tries again."""

    def __init__(
        self, n_envs: int, rollout: int, obs_shape: tuple[int, ...], obs_dtype: Any, hidden: int, capacity: int
    ):
        slots = n_envs + capacity
        T = rollout
        self.rollout, self.n_envs = T, n_envs
        self.obs = np.zeros((slots, T + 1, *obs_shape), dtype=obs_dtype)
        self.values = np.zeros((slots, T + 1), dtype=np.float32)
        self.actions = np.zeros((slots, T), dtype=np.int64)
        self.log_probs = np.zeros((slots, T), dtype=np.float32)
        self.rewards = np.zeros((slots, T), dtype=np.float32)
        self.dones = np.zeros((slots, T), dtype=np.float32)
        self.versions = np.zeros((slots, T), dtype=np.int64)
        self.h0 = np.zeros((slots, max(hidden, 1)), dtype=np.float32)
        self.slot_of = np.arange(n_envs)  # env -> its slot
        self.t = np.zeros(n_envs, dtype=np.int64)  # env -> steps recorded in its slot
        self.free = list(range(n_envs, slots))
        self.complete: list[int] = []
        self._lock = threading.Condition()

    def outcome(self, envs: np.ndarray, rewards: np.ndarray, dones: np.ndarray, started: np.ndarray) -> None:
        """The rewards and ends of the step each env took last (`started`: the envs that had taken one)."""
        e = envs[started]
        slots, t = self.slot_of[e], self.t[e] - 1
        self.rewards[slots, t] = rewards[started]
        self.dones[slots, t] = dones[started]

    def full(self, envs: np.ndarray) -> int:
        """How many of these envs finish a trajectory at their next record (each then needs a free slot)."""
        return int((self.t[envs] == self.rollout).sum())

    def record(
        self,
        envs: np.ndarray,
        obs: np.ndarray,
        h_in: np.ndarray,
        actions: np.ndarray,
        log_probs: np.ndarray,
        values: np.ndarray,
        version: int,
    ) -> bool:
        """One inference step of `envs`: the observation it saw, the state it started from, what it chose."""
        T = self.rollout
        with self._lock:
            ending = self.t[envs] == T
            if int(ending.sum()) > len(self.free):
                return False
            for i in np.flatnonzero(ending):  # the bootstrap of the finished slot, then a fresh slot
                env, slot = envs[i], self.slot_of[envs[i]]
                self.obs[slot, T] = obs[i]
                self.values[slot, T] = values[i]
                self.complete.append(int(slot))
                self.slot_of[env] = self.free.pop()
                self.t[env] = 0
                self._lock.notify_all()
        slots, t = self.slot_of[envs], self.t[envs]
        self.obs[slots, t] = obs
        self.actions[slots, t] = actions
        self.log_probs[slots, t] = log_probs
        self.values[slots, t] = values
        self.versions[slots, t] = version
        first = t == 0
        if first.any():
            self.h0[slots[first]] = h_in[first] if h_in.size else 0.0
        self.t[envs] += 1
        return True

    def ready(self) -> int:
        return len(self.complete)

    def wait(self, n: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds for `n` complete trajectories; True when they are there."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.complete) >= n, timeout)

    def wait_free(self, n: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until `n` slots are free; True when they are."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.free) >= n, timeout)

    def take(self, n: int) -> dict[str, np.ndarray]:
        """Copy out the first n complete trajectories (in the order they completed) and free their slots."""
        with self._lock:
            chosen, self.complete = self.complete[:n], self.complete[n:]
        idx = np.asarray(chosen)
        batch = {
            "obs": self.obs[idx],
            "values": self.values[idx],
            "actions": self.actions[idx],
            "log_probs": self.log_probs[idx],
            "rewards": self.rewards[idx],
            "dones": self.dones[idx],
            "versions": self.versions[idx],
            "h0": self.h0[idx],
        }
        with self._lock:
            self.free.extend(chosen)
            self._lock.notify_all()
        return batch


def default_workers() -> int:
    """Every core (Sample Factory's num_workers default), at least one."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
