"""The frame every algorithm trains in, as Stable-Baselines3's `learn()` is: progress bar, callbacks, checkpoint
timing, stopping, and the checkpoint and model written at the end. An algorithm provides its steps:

    with run.loop(total, "steps", initial=steps, checkpoint=checkpoint, save=save) as loop:
        while steps < total:
            ...                                   # collect, update: the algorithm's own work
            if loop.update(n, steps, snapshot, mean_return=...):
                break                             # Ctrl-C, SIGTERM or a callback asked to stop
            loop.checkpoint_if_due(steps)

Stopping is a flag (`run.stop_requested`) that `update` reports after each progress update, never an exception
thrown from the progress bar: the algorithm leaves its loop with its state whole, and the frame then saves the
checkpoint and the model (marked "stopped" when it was stopped, so a stopped run is evaluated and pushed as it
is). A second Ctrl-C raises KeyboardInterrupt at once; the frame still saves what it has.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deeprl.log import Progress

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType


_Run = Any  # a deeprl.train.Run (train imports this module, so it is not imported back here)
Snapshot = Callable[[], "tuple[dict, dict]"]  # () -> (model tensors, policy config) of the policy as it is now


class Callback:
    """A hook into a training run, as Stable-Baselines3's callbacks are.

    - `on_update(run, count, snapshot)`: after each progress update (a rollout, an episode batch, a vector step),
      with the count in the run's unit (steps, or episodes for Q-Learning and REINFORCE) and a snapshot function
      that returns the current model's tensors and policy config (building them costs a copy: call it only when
      needed). Returning True stops the run.
    - `on_evaluation(run, count, result)`: after an evaluation the algorithm runs itself (DQN's `eval_freq`), with
      the course protocol's figures. Returning True stops the run.
    - `should_stop(run)`: asked after every update; True stops the run.

    A run stopped by a callback ends as a Ctrl-C does, with its checkpoint and model saved, and `train()` returns
    it normally (`run.stopped_by_callback`)."""

    def on_update(self, run: _Run, count: int, snapshot: Snapshot) -> bool:
        return False

    def on_evaluation(self, run: _Run, count: int, result: dict) -> bool:
        return False

    def should_stop(self, run: _Run) -> bool:
        return False


class Loop:
    """See the module's docstring. `checkpoint()` writes the algorithm's checkpoint, `save(stopped)` its model
    (checkpoint timing: `checkpoint_if_due`);
    `close()` (optional) lets go of what the algorithm opened (envs, log files) before those are written;
    `rewind()` (optional) puts a stopped run's state back to its last whole update before they are (REINFORCE)."""

    def __init__(
        self,
        run: _Run,
        total: int,
        unit: str,
        *,
        initial: int = 0,
        checkpoint: Callable[[], None],
        save: Callable[[bool], None],
        checkpoint_every: int | None = None,
        checkpoint_seconds: float = 0,
        checkpoint_gap: float = 0,
        checkpoint_from: int | None = None,
        close: Callable[[], None] | None = None,
        rewind: Callable[[], None] | None = None,
    ):
        self.run, self.checkpoint, self.save, self.close, self.rewind = run, checkpoint, save, close, rewind
        self.every, self.seconds, self.gap = checkpoint_every, checkpoint_seconds, checkpoint_gap
        start = initial if checkpoint_from is None else checkpoint_from  # the count checkpoint_every is in
        self.next_checkpoint = (start // checkpoint_every + 1) * checkpoint_every if checkpoint_every else None
        self.last_checkpoint = -math.inf if checkpoint_gap else time.perf_counter()
        self.progress = Progress(
            total, unit, desc=f"{run.algo} {run.env_id}", enabled=run.show_progress, initial=initial
        )

    @property
    def stopped(self) -> bool:
        return self.run.stop_requested

    def update(self, n: int, count: int, snapshot: Snapshot | None = None, **metrics: Any) -> bool:
        """Advance the progress by `n`, give the callbacks the new count; True when the run is to stop now."""
        self.progress.update(n, **metrics)
        run = self.run
        for callback in run.callbacks:
            if callback.on_update(run, count, snapshot) or callback.should_stop(run):
                run.stop_requested = run.stopped_by_callback = True
        return run.stop_requested

    def evaluated(self, count: int, result: dict) -> bool:
        """Give the callbacks an evaluation's figures; True when one of them stops the run."""
        run = self.run
        for callback in run.callbacks:
            if callback.on_evaluation(run, count, result):
                run.stop_requested = run.stopped_by_callback = True
        return run.stop_requested

    def checkpoint_if_due(self, count: int) -> None:
        """Write a checkpoint every `checkpoint_every` counts (in the unit the algorithm passes: steps, episodes or
        updates) or `checkpoint_seconds` of wall-clock, whichever comes first, but never within `checkpoint_gap`
        seconds of the last one (each is an fsync'd file: a short run should not spend its time writing them)."""
        now = time.perf_counter()
        by_count = self.next_checkpoint is not None and count >= self.next_checkpoint
        if by_count and self.every:  # (next_checkpoint is set only when every is)
            self.next_checkpoint = count + self.every
        if not (by_count or (self.seconds and now - self.last_checkpoint >= self.seconds)):
            return
        if now - self.last_checkpoint < self.gap:
            return
        self.checkpoint()
        self.last_checkpoint = time.perf_counter()

    def __enter__(self) -> Loop:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:  # None: an exception goes on
        self.progress.close()
        if self.close is not None:
            self.close()
        if kind is None or issubclass(kind, KeyboardInterrupt):
            # a second Ctrl-C (KeyboardInterrupt) lands here too: what the run has is saved before it goes on
            stopped = kind is not None or self.run.stop_requested
            if stopped and self.rewind is not None:
                self.rewind()
            self.checkpoint()
            self.save(stopped)


def evaluate_snapshot(run: _Run, snapshot: Snapshot, folder: Path, **evaluate_kwargs: Any) -> dict:
    """The course protocol's figures for a callback's snapshot, saved under `folder` and loaded as `deeprl evaluate`
    would load it. The global random states are put back afterwards, so a callback that evaluates never changes
    how the run trains (torch's only where the run uses torch: a numpy-only run never imports it).
    `evaluate_kwargs` go to deeprl.evaluation.evaluate (n_eval_episodes, seed)."""
    import random

    import numpy as np

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.modelio import save_model

    states = (random.getstate(), np.random.get_state())
    torch_state = None
    if run.uses_torch:
        import torch

        torch_state = torch.get_rng_state()
    try:
        tensors, policy_config = snapshot()
        save_model(folder, tensors, {**run.base_config(), "policy": policy_config})
        return evaluate(load_agent(folder), **evaluate_kwargs)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        if torch_state is not None:
            import torch

            torch.set_rng_state(torch_state)
