"""Replays without a display: the env's rgb_array frames, written as H.264 (yuv420p) by imageio-ffmpeg.

No X server, no Xvfb: Gymnasium's rgb_array rendering draws off-screen. Tabular envs (Taxi, FrozenLake) are
recorded at 1 frame per second, as the course does, so each move can be followed.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.errors import UserError

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.agent import Agent

MAX_FRAMES = 5000  # a replay is for watching; an endless episode should not fill the disk
SLOW_ENVS = {"Taxi-v3", "FrozenLake-v1"}


class _ReplayFull(Exception):
    """Raised from the step hook once a replay has its frames: ends the episode being recorded."""


def _even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even widths and heights: pad by one edge pixel where needed."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def _rgb(frame: Any) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"the env rendered a frame of shape {frame.shape}, not an RGB image")
    frame = frame[:, :, :3]
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(_even(frame))


def default_fps(agent: Agent, env: gym.Env) -> float:
    if agent.env_id in SLOW_ENVS:
        return 1.0
    fps = (getattr(env, "metadata", None) or {}).get("render_fps") or 30
    return float(min(max(fps, 1), 60))


def h264_writer(path: str | Path, size: tuple[int, int], fps: float) -> Generator[None, np.ndarray | None, None]:
    """A started imageio-ffmpeg writer for H.264/yuv420p MP4 (no display needed): `.send(rgb_frame)`, `.close()`.
    Frames must match `size` (width, height) and have even sides (see _rgb)."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path),
        size,
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        output_params=["-movflags", "+faststart"],
    )
    writer.send(None)  # start ffmpeg
    return writer


def write_video(frames: Sequence[np.ndarray], out_path: str | Path, fps: float) -> None:
    """Frames already in memory (matches) -> one H.264 MP4."""
    rgb = [_rgb(f) for f in frames]
    writer = h264_writer(out_path, (rgb[0].shape[1], rgb[0].shape[0]), fps)
    try:
        for f in rgb:
            writer.send(f)
    finally:
        writer.close()


def record(
    agent: Agent,
    out_path: str | Path,
    n_episodes: int = 1,
    seed: int = 0,
    fps: float | None = None,
    max_frames: int = MAX_FRAMES,
) -> dict:
    """Play `n_episodes` with the evaluation protocol's actions and write them to `out_path` (.mp4)."""
    from deeprl.envs import get_spec, make_env
    from deeprl.evaluation import play_episode

    if n_episodes < 1:
        raise UserError("A replay needs at least one episode (--n-episodes 1 or more).")
    out = Path(out_path)
    if out.suffix.lower() != ".mp4":
        raise UserError(f"{out} should end in .mp4 (replays are H.264 MP4 files).")
    tmp = out.with_name(f".{out.name}.part.mp4")
    _probe_write(out, tmp)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # pygame-drawn envs render off-screen; without this SDL complains about the missing display
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    spec = get_spec(agent.env_id)
    env = make_env(agent.env_id, agent.env_kwargs, render_mode="rgb_array")
    fps = float(fps or default_fps(agent, env))
    writer, size, frames = None, None, 0

    def on_step(e: gym.Env) -> None:
        nonlocal writer, size, frames
        if frames >= max_frames:
            raise _ReplayFull
        frame = _rgb(e.render())
        if writer is None:
            size = (frame.shape[1], frame.shape[0])
            writer = h264_writer(tmp, size, fps)
        elif (frame.shape[1], frame.shape[0]) != size:  # keep one size for the whole video
            frame = _even(np.asarray(_resize(frame, size)))
        writer.send(frame)
        frames += 1

    try:
        for i in range(n_episodes):
            try:
                play_episode(
                    agent,
                    env,
                    seed=seed + i,
                    max_steps=spec.eval_max_steps,
                    deterministic=spec.deterministic,
                    on_step=on_step,
                )
            except _ReplayFull:
                break
        if writer is None:
            raise RuntimeError("the env rendered no frame")
        writer.close()
        writer = None
        tmp.replace(out)
    except OSError as exc:  # ffmpeg stopped (its pipe broke): a disk that filled up is the user's to fix
        _no_space(out, exc)
        raise
    finally:
        env.close()
        if writer is not None:
            writer.close()
        if tmp.exists():
            tmp.unlink()
    return {"frames": frames, "path": str(out), "fps": fps}


PROBE_BYTES = 1 << 20  # written before ffmpeg starts: a folder that cannot take this cannot take the video


def _probe_write(out: Path, tmp: Path) -> None:
    """Create the output's folder and write a first MiB where ffmpeg will write, so a read-only folder or a full
    disk is one sentence naming the path now, not ffmpeg's broken pipe (and a missing file) after the replay."""
    from deeprl.paths import why

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(bytes(PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UserError(
            f"Cannot write the video {out} ({why(exc, out.parent)}); pick another path with --out or free some space."
        ) from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def _no_space(out: Path, exc: OSError) -> None:
    import shutil

    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if free < 4 * PROBE_BYTES:
        raise UserError(
            f"Cannot write the video {out}: the disk filled up while recording ({free // 1024} KiB "
            f"free); free some space or pick another path with --out."
        ) from exc


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    out = np.zeros((h, w, 3), dtype=np.uint8)
    hh, ww = min(h, frame.shape[0]), min(w, frame.shape[1])
    out[:hh, :ww] = frame[:hh, :ww]
    return out


def probe(path: str | Path) -> dict:
    """Codec, size and frame count of a video file (for tests and `deeprl record`'s report)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    n = sum(1 for _ in gen)
    return {"codec": meta.get("codec"), "size": tuple(meta.get("size") or ()), "fps": meta.get("fps"), "frames": n}
