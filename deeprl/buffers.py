"""Replay memories for off-policy learning (DQN).

`ReplayBuffer` keeps observations as given (vectors: CartPole, LunarLander). `FrameReplayBuffer` is for stacked
frames (Atari, uint8 (4, 84, 84)): each step stores only the newest frame of the observation the action was
taken in, once, so 100k transitions of 84x84 frames take 100k * 7 KB = 0.7 GB instead of the 5.6 GB of storing
obs and next_obs whole (SB3 without optimize_memory_usage). A stack is rebuilt at sampling from the frames of the
same episode; frames before the episode's start are the episode's first frame, which is what the env's own
frame stack shows at reset (FrameStackObservation pads with the reset frame), so training sees the observations
the agent acted on. The next observation is the following slot of the same env and episode; at the end of an
episode it is the final observation, kept aside (few, one per truncated episode) when bootstrapping needs it.

Both lay memory out as (rows, n_envs): one row per vector step, so an env's consecutive steps are consecutive
rows, as in SB3. Sampling is uniform over the transitions whose observation and next observation are whole.
Both save to and load from one safetensors file written atomically, streamed from the arrays (no second copy of
0.7 GB in memory while saving).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deeprl.errors import UserError
from deeprl.modelio import atomic_writer

_DTYPES = {
    "uint8": "U8",
    "int8": "I8",
    "int16": "I16",
    "int32": "I32",
    "int64": "I64",
    "float16": "F16",
    "float32": "F32",
    "float64": "F64",
    "bool": "BOOL",
}
_NP = {v: k for k, v in _DTYPES.items()}


class ReplayBuffer:
    """Circular memory of (obs, action, reward, next_obs, terminated) for `n_envs` envs stepped together."""

    def __init__(self, buffer_size: int, n_envs: int, obs_shape: tuple, obs_dtype: npt.DTypeLike = np.float32):
        self.n_envs = int(n_envs)
        self.rows = max(int(buffer_size) // self.n_envs, 1)
        self.obs_shape = tuple(obs_shape)
        self.obs = np.zeros((self.rows, self.n_envs, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self._alloc_common()

    def _alloc_common(self) -> None:
        self.actions = np.zeros((self.rows, self.n_envs), dtype=np.int64)
        self.rewards = np.zeros((self.rows, self.n_envs), dtype=np.float32)
        self.terminated = np.zeros((self.rows, self.n_envs), dtype=bool)
        self.pos = 0  # next row to write
        self.full = False

    def __len__(self) -> int:
        return (self.rows if self.full else self.pos) * self.n_envs

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """One vector step. `next_obs` is the true next observation (the final one for envs that just ended)."""
        p = self.pos
        self.obs[p] = obs
        self.next_obs[p] = next_obs
        self._add_common(actions, rewards, terminated)

    def _add_common(self, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray) -> None:
        p = self.pos
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.terminated[p] = terminated
        self.pos = (p + 1) % self.rows
        self.full = self.full or self.pos == 0

    def draw(self, batch_size: int, rng: np.random.Generator, ahead: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(rows, envs) of a batch that sample() takes after `ahead` more adds, drawn now uniformly over what the
        buffer will hold then (sample() checks them then): the same numbers as drawing then, known early."""
        hi = self.rows if self.full or self.pos + ahead >= self.rows else self.pos + ahead
        return rng.integers(0, hi, batch_size), rng.integers(0, self.n_envs, batch_size)

    def sample(
        self, batch_size: int, rng: np.random.Generator, drawn: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict:
        rows, envs = self.draw(batch_size, rng) if drawn is None else drawn
        return self._batch(rows, envs)

    def _batch(self, rows: np.ndarray, envs: np.ndarray) -> dict:
        return {
            "obs": self.obs[rows, envs],
            "actions": self.actions[rows, envs],
            "rewards": self.rewards[rows, envs],
            "next_obs": self.next_obs[rows, envs],
            "terminated": self.terminated[rows, envs],
        }

    # -- persistence -----------------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "obs": self.obs,
            "next_obs": self.next_obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
        }

    def meta(self) -> dict:
        return {
            "kind": type(self).__name__,
            "pos": self.pos,
            "full": self.full,
            "rows": self.rows,
            "n_envs": self.n_envs,
            "obs_shape": list(self.obs_shape),
        }

    def set_meta(self, meta: dict, extra: dict | None = None) -> None:
        self.pos, self.full = int(meta["pos"]), bool(meta["full"])

    def save(self, path: Path) -> None:
        write_arrays(path, self.arrays(), {"buffer": json.dumps(self.meta())})

    def load(self, path: Path) -> None:
        """Fill this (freshly built, same shape) buffer from `path`; a mismatch is a UserError."""

        def check(meta: dict) -> None:
            mine = self.meta()
            if any(meta.get(k) != mine[k] for k in ("kind", "rows", "n_envs", "obs_shape")):
                raise UserError(
                    f"The saved replay buffer {path} does not match this run's buffer_size, n_envs or "
                    f"observations; delete it to resume with an empty buffer."
                )

        own = self.arrays()
        meta, extra = read_arrays_into(path, own, check)
        self.set_meta(meta, {**own, **extra})
        self.on_resume()

    def on_resume(self) -> None:
        """The env restarts after a resume; nothing is pending in a buffer that stores next_obs whole."""


class FrameReplayBuffer(ReplayBuffer):
    """Stacked-frame observations with each frame stored once (see the module doc)."""

    def __init__(self, buffer_size: int, n_envs: int, obs_shape: tuple):
        self.n_envs = int(n_envs)
        self.rows = max(int(buffer_size) // self.n_envs, 1)
        self.obs_shape = tuple(obs_shape)
        self.stack = int(obs_shape[0])
        self.frames = np.zeros((self.rows, self.n_envs, *self.obs_shape[1:]), dtype=np.uint8)
        # steps since the episode's first frame, capped at stack-1: how far back this slot's stack reaches
        self.age = np.zeros((self.rows, self.n_envs), dtype=np.uint8)
        # whether this slot's next observation is known (the following slot was written, or the episode ended)
        self.ready = np.zeros((self.rows, self.n_envs), dtype=bool)
        self.done = np.zeros((self.rows, self.n_envs), dtype=bool)
        self.final: dict[int, np.ndarray] = {}  # row * n_envs + env -> last frame of a truncated episode
        self._env_age = np.zeros(self.n_envs, dtype=np.int64)
        self._alloc_common()

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        p, prev = self.pos, (self.pos - 1) % self.rows
        done = np.logical_or(terminated, truncated)
        self.frames[p] = obs[:, -1]
        self.age[p] = np.minimum(self._env_age, self.stack - 1)
        # the previous slot of an env that did not just start an episode now has its next frame
        self.ready[prev] |= self._env_age > 0
        self.ready[p] = done
        self.done[p] = done
        for e in range(self.n_envs):
            self.final.pop(p * self.n_envs + e, None)
            if truncated[e] and not terminated[e]:  # bootstrapping needs the true last frame
                self.final[p * self.n_envs + e] = np.array(next_obs[e, -1])
        self._env_age = np.where(done, 0, self._env_age + 1)
        self._add_common(actions, rewards, terminated)

    def _whole(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        ok = self.ready[rows, envs].copy()
        if self.full:
            # the rows just behind the write position were overwritten by newer steps: a stack reaching back
            # past the oldest row would mix episodes
            behind = (rows - self.pos) % self.rows
            ok &= behind >= self.age[rows, envs]
        return ok

    def sample(
        self, batch_size: int, rng: np.random.Generator, drawn: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict:
        hi = self.rows if self.full else self.pos
        rows, envs = self.draw(batch_size, rng) if drawn is None else (drawn[0].copy(), drawn[1].copy())
        for _ in range(100):  # few slots are not whole (the newest, a few behind the write position)
            bad = ~self._whole(rows, envs)
            if not bad.any():
                break
            n = int(bad.sum())
            rows[bad] = rng.integers(0, hi, n)
            envs[bad] = rng.integers(0, self.n_envs, n)
        else:
            raise RuntimeError("the replay buffer holds no complete transition yet")
        return self._batch(rows, envs)

    def _stack_rows(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """(batch, stack) row indices of the frames making the stacked observation at (rows, envs)."""
        back = np.arange(self.stack - 1, -1, -1)[None, :]  # stack-1 ... 0 steps back
        back = np.minimum(back, self.age[rows, envs][:, None])
        return (rows[:, None] - back) % self.rows

    def _batch(self, rows: np.ndarray, envs: np.ndarray) -> dict:
        e2 = envs[:, None]
        obs = self.frames[self._stack_rows(rows, envs), e2]
        # within an episode the next observation is the next slot's stack; at an episode's end it is this stack
        # shifted by the final frame (zeros when terminated: the target does not bootstrap from it)
        next_obs = self.frames[self._stack_rows((rows + 1) % self.rows, envs), e2]
        for i in np.flatnonzero(self.done[rows, envs]):
            next_obs[i, :-1] = obs[i, 1:]
            last = self.final.get(int(rows[i]) * self.n_envs + int(envs[i]))
            next_obs[i, -1] = 0 if last is None else last
        return {
            "obs": obs,
            "actions": self.actions[rows, envs],
            "rewards": self.rewards[rows, envs],
            "next_obs": next_obs,
            "terminated": self.terminated[rows, envs],
        }

    # -- persistence -----------------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        keys = np.array(sorted(self.final), dtype=np.int64)
        finals = (
            np.stack([self.final[int(k)] for k in keys])
            if keys.size
            else np.zeros((0, *self.obs_shape[1:]), dtype=np.uint8)
        )
        return {
            "frames": self.frames,
            "age": self.age,
            "ready": self.ready,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "done": self.done,
            "final_keys": keys,
            "final_frames": finals,
        }

    def on_resume(self) -> None:
        # the envs start new episodes: the newest slot of an unfinished episode never gets its next frame
        self._env_age[:] = 0

    def set_meta(self, meta: dict, extra: dict | None = None) -> None:
        super().set_meta(meta)
        if extra is not None:
            self.final = {int(k): np.array(f) for k, f in zip(extra["final_keys"], extra["final_frames"])}


# -- one safetensors file, streamed -------------------------------------------------------------------------------
# The format (8-byte little-endian header length, JSON header, raw little-endian data) is written by hand here so
# that 0.7 GB of frames go from the arrays to the file without a copy in memory; safetensors reads it back.


def write_arrays(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    path = Path(path)
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name, a in arrays.items():
        n = a.nbytes
        header[name] = {"dtype": _DTYPES[a.dtype.name], "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    with atomic_writer(path) as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for a in arrays.values():
            if a.size:
                fh.write(np.ascontiguousarray(a).data.cast("B"))


def read_arrays_into(
    path: Path, arrays: dict[str, np.ndarray], check: Callable[[dict], None] | None = None
) -> tuple[dict, dict]:
    """Read a file from `write_arrays` into `arrays` in place (same shapes); arrays of other sizes come back new.

    `check(meta)` runs on the metadata before any data is read. Returns (the buffer's JSON metadata,
    {name: array} for names whose shape differs from `arrays`).
    """
    path = Path(path)
    bad = f"The replay buffer file {path} is damaged or not a deeprl replay buffer; delete it to start without it."
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise UserError(f"Cannot read the replay buffer {path} ({exc.strerror}).") from None
    with fh:
        try:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
            meta = json.loads(header.pop("__metadata__")["buffer"])
        except (struct.error, ValueError, KeyError, TypeError):
            raise UserError(bad) from None
        if check is not None:
            check(meta)
        base = 8 + n
        size = os.fstat(fh.fileno()).st_size
        extra = {}
        for name, info in header.items():
            try:
                dtype = np.dtype(_NP[info["dtype"]])
                shape = tuple(int(d) for d in info["shape"])
                start, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise UserError(bad) from None
            if end - start != int(np.prod(shape)) * dtype.itemsize or base + end > size:
                raise UserError(bad)
            target = arrays.get(name)
            if target is None or target.shape != shape or target.dtype != dtype:
                target = extra[name] = np.empty(shape, dtype)
            fh.seek(base + start)
            if target.size and fh.readinto(target.data.cast("B")) != end - start:
                raise UserError(bad)
    return meta, extra
