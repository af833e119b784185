"""A training run: hyperparameters -> algorithm -> run folder with checkpoints, model and logs.

Run folders follow RL-Zoo: `-f logs/` gives `logs/<algo>/<env tag>_<N>/` holding `config.json`,
`model.safetensors` (when training finished or was stopped), `checkpoint.safetensors` (latest state) and
`tb/` (TensorBoard). `--resume` continues the newest run of that algorithm and env from its checkpoint.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from deeprl.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from deeprl.envs import resolve_env
from deeprl.errors import UserError
from deeprl.log import note
from deeprl.loop import Callback, Loop  # noqa: F401  (Callback: train()'s callbacks, importable from here)
from deeprl.modelio import CONFIG_FILE, MODEL_FILE, atomic_write_json, save_model
from deeprl.paths import check_can_create, writable_folder

# the settings' functions, under the names callers have used since they lived here
from deeprl.settings import (  # noqa: F401
    ZOO_KEYS,
    coerce,
    default_hyperparams,
    merge_hyperparams,
    parse_overrides,
    read_hyperparam_file,
)

if TYPE_CHECKING:
    from types import FrameType

    from _typeshed import DataclassInstance

    from deeprl.log import TensorBoard

_Settings = TypeVar("_Settings", bound="DataclassInstance")


def seed_everything(seed: int, uses_torch: bool = True) -> None:
    """Seed Python's, numpy's and (for an algorithm that uses it) torch's global generators. A numpy-only algorithm
    (`USES_TORCH = False` in its module, as Q-Learning) leaves torch alone: importing it is most of such a run."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if not uses_torch:
        return
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def new_run_dir(root: Path, algo: str, tag: str) -> Path:
    base = Path(root) / algo
    base.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(tag) + r"_(\d+)$")
    taken = [int(m.group(1)) for p in base.iterdir() if (m := pattern.match(p.name))]
    n = max(taken, default=0) + 1
    while True:
        path = base / f"{tag}_{n}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this number
            n += 1


def check_run_id(run_id: str) -> None:
    """ML-Agents' --run-id names the run's folder: one plain folder name."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or len(run_id) > 100:
        raise UserError(f"--run-id must be a plain folder name such as PyramidsTraining, not {run_id!r}.")


def named_run_dir(root: str | Path, algo: str, run_id: str) -> Path:
    """root/algo/run_id (ML-Agents' --run-id), which must not hold a run yet."""
    path = Path(root) / algo / run_id
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise UserError(f"{path} exists already; continue it with --resume, or pick another --run-id.") from None
    return path


def latest_run_dir(root: Path, algo: str, tag: str) -> Path | None:
    base = Path(root) / algo
    pattern = re.compile(re.escape(tag) + r"_(\d+)$")
    runs = (
        sorted(((int(m.group(1)), p) for p in base.glob("*") if (m := pattern.match(p.name))), key=lambda x: x[0])
        if base.is_dir()
        else []
    )
    return runs[-1][1] if runs else None


@dataclass
class Run:
    """What an algorithm's `train(run)` receives and calls back into."""

    algo: str
    env_id: str
    env_kwargs: dict
    env_tag: str
    hyperparams: dict
    seed: int
    run_dir: Path
    device: str = "cpu"
    uses_torch: bool = True  # False for a numpy-only algorithm: its checkpoints and seeding leave torch out
    resumed: tuple[dict, dict] | None = None
    show_progress: bool = True
    started_at: float = field(default_factory=time.perf_counter)
    extra_config: dict = field(default_factory=dict)
    _writer: Any = None
    stop_requested: bool = False  # set by Ctrl-C, SIGTERM or a callback; the training loop checks it
    callbacks: list = field(default_factory=list)
    stopped_by_callback: bool = False

    def settings(self, cls: type[_Settings]) -> _Settings:
        """The run's hyperparameters as the algorithm's typed settings (deeprl.settings.load)."""
        from deeprl.settings import load

        return load(cls, self.hyperparams)

    def loop(self, total: int, unit: str, **frame: Any) -> Loop:
        """The training frame (deeprl.loop.Loop): progress, callbacks, checkpoints, stopping, closing, the final
        save; `frame` is Loop's keywords (initial, checkpoint, save, checkpoint_every, checkpoint_seconds, close)."""
        return Loop(self, total, unit, **frame)

    def base_config(self) -> dict:
        return {
            "algo": self.algo,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "env_tag": self.env_tag,
            "seed": self.seed,
            "hyperparams": self.hyperparams,
            **self.extra_config,
        }

    def checkpoint(self, tensors: dict, state: dict, np_rng: np.random.Generator | None = None) -> None:
        rng_tensors, rng_json = rng_state(np_rng, torch_rng=self.uses_torch)
        save_checkpoint(self.run_dir, {**tensors, **rng_tensors}, {**state, **rng_json, "seed": self.seed})

    def restore_rng(self, tensors: dict, state: dict, np_rng: np.random.Generator | None = None) -> None:
        set_rng_state(tensors, state, np_rng, torch_rng=self.uses_torch)

    def save_model(self, tensors: dict, policy_config: dict, stopped: bool = False, **trained: Any) -> None:
        """Write model.safetensors and config.json: at the end of training, and (`stopped=True`) when a run is
        stopped by Ctrl-C or SIGTERM, so that a stopped run can be evaluated and pushed as it is."""
        trained["seconds"] = round(time.perf_counter() - self.started_at, 3)
        save_model(
            self.run_dir,
            tensors,
            {
                **self.base_config(),
                "policy": policy_config,
                "trained": trained,
                "status": "stopped" if stopped else "finished",
            },
        )

    def writer(self) -> TensorBoard:
        """TensorBoard scalars under run_dir/tb (deeprl.log.TensorBoard, created on first use)."""
        if self._writer is None:
            from deeprl.log import TensorBoard

            self._writer = TensorBoard(str(self.run_dir / "tb"))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def resolve_device(device: str, uses_torch: bool = True) -> str:
    """The device a run trains on. A numpy-only algorithm (`uses_torch=False`) always runs on the CPU, and finding
    out whether a GPU is there would import torch for nothing."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"Unknown device '{device}'; use auto, cpu or cuda.")
    if not uses_torch:
        if device.startswith("cuda"):
            note(f"this algorithm computes with numpy on the CPU; --device {device} is ignored.")
        return "cpu"
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return device


def train(
    algo: str,
    env_id: str,
    *,
    env_kwargs: dict | None = None,
    hyperparams_file: str | None = None,
    overrides: dict | None = None,
    seed: int = 0,
    log_folder: str | Path = "logs",
    n_timesteps: int | None = None,
    resume: bool = False,
    device: str = "auto",
    show_progress: bool = True,
    callbacks: list[Callback] | None = None,
    run_id: str | None = None,
) -> Run:
    from deeprl.algos import get_algo

    check_seed(seed)
    if run_id is not None:
        check_run_id(run_id)
    if not resume:  # before anything prints a note: a folder that cannot take the run is the whole answer
        check_can_create(log_folder, "The log folder", "pick another one with -f")  # creates nothing yet
    module = get_algo(algo)
    algo_name = module.__name__.rsplit(".", 1)[-1]
    uses_torch = getattr(module, "USES_TORCH", True)
    spec, kwargs = resolve_env(env_id, env_kwargs)
    tag = spec.card_tag(kwargs)
    resumed = None
    if resume:
        if run_id is None:
            run_dir = latest_run_dir(Path(log_folder), algo_name, tag)
        else:
            named = Path(log_folder) / algo_name / run_id
            run_dir = named if named.is_dir() else None
        resumed = load_checkpoint(run_dir) if run_dir is not None else None
        if run_dir is None or resumed is None:
            raise UserError(f"Nothing to resume: no {algo_name} run of {tag} with a checkpoint under {log_folder}.")
        import json

        previous = json.loads((run_dir / CONFIG_FILE).read_text())
        hp, seed = previous["hyperparams"], previous["seed"]
        if n_timesteps is not None:
            hp["n_timesteps"] = n_timesteps
        if overrides:  # a changed budget for the continuation (n_training_episodes; deeprl tune trains in chunks)
            merged = merge_hyperparams(algo_name, module, spec.course_id, tag, None, overrides, None)
            hp.update({k: merged[k] for k in overrides if k in merged})
        writable_folder(run_dir, "The run folder", "copy the run somewhere writable and resume it there with -f")
        done = finished_count(hp, resumed[1])
        if done is not None and (run_dir / MODEL_FILE).is_file():
            trained, budget, unit = done
            more = "--resume --hyperparams n_training_episodes:N" if unit == "episodes" else "--resume -n N"
            run = Run(
                algo=algo_name,
                env_id=spec.course_id,
                env_kwargs=kwargs,
                env_tag=tag,
                hyperparams=hp,
                seed=seed,
                run_dir=run_dir,
                show_progress=show_progress,
            )
            raise RunFinished(
                f"{run_dir} has finished already ({trained:,} {unit} trained, budget {budget:,}), so "
                f"there is nothing to resume; to train it further, give a larger budget with {more}.",
                run,
            )
    else:
        hp = merge_hyperparams(algo_name, module, spec.course_id, tag, hyperparams_file, overrides or {}, n_timesteps)
        writable_folder(log_folder, "The log folder", "pick another one with -f")
        if run_id is None:
            run_dir = new_run_dir(Path(log_folder), algo_name, tag)
        else:
            run_dir = named_run_dir(log_folder, algo_name, run_id)
    try:
        run = Run(
            algo=algo_name,
            env_id=spec.course_id,
            env_kwargs=kwargs,
            env_tag=tag,
            hyperparams=hp,
            seed=seed,
            run_dir=run_dir,
            device=resolve_device(device, uses_torch),
            uses_torch=uses_torch,
            resumed=resumed,
            show_progress=show_progress,
            callbacks=list(callbacks or []),
        )
    except BaseException:
        if not resume:
            _remove_untrained(run_dir)
        raise
    # config.json first, so an interrupted run is still a folder that says what it is.
    atomic_write_json(run_dir / CONFIG_FILE, {**run.base_config(), "status": "running"})
    seed_everything(seed, uses_torch)
    previous_handlers = _stop_on_signals(run)
    try:
        module.train(run)
        if run.stop_requested and not run.stopped_by_callback:
            raise KeyboardInterrupt  # saved and stopped by Ctrl-C or SIGTERM: the command line says how to resume
    except KeyboardInterrupt:
        if not run.stopped_by_callback:
            raise  # Ctrl-C or SIGTERM: the command line says how to resume
    except Exception:
        # refused or failed before it trained anything (bad settings, wrong env): leave no empty run folder behind
        if not resume:
            _remove_untrained(run_dir)
        raise
    finally:
        _restore_handlers(previous_handlers)
        run.close()
    return run


def _remove_untrained(run_dir: Path) -> None:
    if not any((run_dir / f).exists() for f in ("checkpoint.safetensors", MODEL_FILE)):
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


SEED_LIMIT = 2**32  # numpy's seeds: 0 <= seed < 2**32


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < SEED_LIMIT:
        raise UserError(f"--seed must be a whole number from 0 to {SEED_LIMIT - 1}, not {seed!r}.")
    return int(seed)


class RunFinished(UserError):
    """`--resume` of a run that already reached its budget: nothing to train. `.run` is that run."""

    def __init__(self, message: str, run: Run):
        super().__init__(message)
        self.run = run


def finished_count(hp: dict, state: dict) -> tuple[int, int, str] | None:
    """(trained, budget, unit) when a checkpoint's counters have reached the run's budget, else None.

    Episode-budgeted algorithms (Q-Learning, REINFORCE) stop at n_training_episodes or at the optional n_timesteps
    cap, whichever comes first; the others at n_timesteps (reached at the end of a whole rollout, so the count can
    pass it)."""
    steps = int(state.get("timesteps", 0) or 0)
    cap = hp.get("n_timesteps")
    if "n_training_episodes" in hp:
        episodes, budget = int(state.get("episodes", 0) or 0), int(hp["n_training_episodes"])
        if episodes >= budget:
            return episodes, budget, "episodes"
    if cap is not None and steps >= int(cap):
        return steps, int(cap), "steps"
    return None


def whole_batches(total: int, batch: int) -> int:
    """The number of steps a run really takes when it stops at the first whole batch (a rollout of n_steps *
    n_envs, a step of n_envs envs) that reaches `total`: what its progress shows as the total."""
    batch = max(1, int(batch))
    return -(-int(total) // batch) * batch


def interrupted_message(log_folder: str | Path) -> str:
    return (
        f"Training interrupted; the last checkpoint is kept, with the model as it stood (evaluate or push it as "
        f"it is). Continue it with the same command plus --resume (runs are under {os.fspath(log_folder)})."
    )


def _stop_on_signals(run: Run) -> dict:
    """Ctrl-C (SIGINT) and a kill (SIGTERM, as at the end of a session) set the run's stop flag, which the training
    loop checks at its next progress update; the run then saves its checkpoint, so `--resume` continues.

    Why not raise at once, as Python does by default: the exception can land inside a library call between taking a
    lock and the `with` that releases it (TensorBoard's writer, tqdm), and closing that writer then waits on the lock
    forever (seen once in CI: a Ctrl-C'd run that never exited). A second signal raises at once. Returns the handlers
    it replaced; a no-op outside the main thread, where Python cannot install handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if run.stop_requested:
            raise KeyboardInterrupt
        run.stop_requested = True
        if signum == signal.SIGINT:  # a raw write: print() here could re-enter a print the signal interrupted
            os.write(2, b"\ndeeprl: stopping after this step and saving a checkpoint (Ctrl-C again to stop at once).\n")

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_handlers(previous: dict) -> None:
    import signal

    for sig, handler in previous.items():
        signal.signal(sig, handler)
