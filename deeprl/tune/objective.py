"""A study and its workers: the settings of a search, the sampler and pruner, one trial (trained once, evaluated
and pruned through a training callback), the worker that claims trial slots."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deeprl.errors import UserError
from deeprl.loop import Callback, Snapshot, evaluate_snapshot
from deeprl.tune.report import _trial_line
from deeprl.tune.spaces import BUDGET_CHOICES, SPACES, budget_key, default_params, sample_hyperparams, tunable
from deeprl.tune.storage import (
    ClaimLock,
    _Heartbeat,
    _safe,
    default_storage,
    fail_abandoned_trials,
    open_storage,
    worker_identity,
)

if TYPE_CHECKING:
    import optuna

    from deeprl.train import Run

N_STARTUP_TRIALS = 5  # random trials before TPE models the space, and before the median pruner prunes (RL-Zoo)


# --------------------------------------------------------------------------------------------------------------
# The study


@dataclass
class TuneConfig:
    algo: str
    env_id: str
    env_kwargs: dict = field(default_factory=dict)
    n_trials: int = 20
    timeout: float | None = None
    n_timesteps: int | None = None  # the budget per trial, in the algorithm's unit (episodes for Q-Learning)
    storage: str | None = None
    study_name: str | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    n_evaluations: int = 4
    n_eval_episodes: int | None = None
    log_folder: str | None = None
    device: str = "auto"
    heartbeat_interval: int = 30
    grace_period: int | None = None
    n_startup_trials: int = N_STARTUP_TRIALS
    warm_start: bool = False  # the first trial trains the env's default settings (hyperparams/<algo>.yml)


@dataclass
class Context:
    """What every trial of one worker shares, resolved once."""

    cfg: TuneConfig
    algo: str
    course_id: str
    env_kwargs: dict
    tag: str
    base: dict
    budget_key: str
    log_root: Path
    study_name: str
    storage_url: str


def resolve(cfg: TuneConfig) -> Context:
    from deeprl.algos import get_algo
    from deeprl.envs import resolve_env
    from deeprl.paths import home
    from deeprl.train import default_hyperparams

    module = get_algo(cfg.algo)
    algo = module.__name__.rsplit(".", 1)[-1]
    if algo not in SPACES:
        raise UserError(f"deeprl tune has no search space for {algo}; tunable: {', '.join(tunable())}.")
    spec, kwargs = resolve_env(cfg.env_id, cfg.env_kwargs)
    tag = spec.card_tag(kwargs)
    base = default_hyperparams(algo, module, spec.course_id, tag)
    if cfg.n_trials < 1:
        raise UserError("--n-trials must be at least 1.")
    if cfg.n_evaluations < 1:
        raise UserError("--n-evaluations must be at least 1.")
    if cfg.n_timesteps is not None and cfg.n_timesteps < cfg.n_evaluations:
        raise UserError(f"--n-timesteps {cfg.n_timesteps} is smaller than --n-evaluations {cfg.n_evaluations}.")
    study_name = cfg.study_name or f"{algo}-{tag}"
    log_root = Path(cfg.log_folder) if cfg.log_folder else home() / "tune" / _safe(study_name)
    return Context(
        cfg,
        algo,
        spec.course_id,
        kwargs,
        tag,
        base,
        budget_key(base),
        log_root,
        study_name,
        cfg.storage or default_storage(),
    )


def make_sampler(
    kind: str, seed: int, trial_number: int, n_startup_trials: int = N_STARTUP_TRIALS
) -> optuna.samplers.BaseSampler:
    import optuna

    # One seed per trial number: a single worker repeats itself exactly, and workers that share a study
    # do not draw the same random points.
    s = (seed * 1_000_003 + trial_number) % 2**32
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if kind == "tpe":
        return optuna.samplers.TPESampler(
            n_startup_trials=n_startup_trials, multivariate=True, constant_liar=True, seed=s
        )
    raise UserError(f"Unknown sampler '{kind}'; use tpe or random.")


def make_pruner(kind: str, n_evaluations: int, n_startup_trials: int = N_STARTUP_TRIALS) -> optuna.pruners.BasePruner:
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_evaluations // 3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"Unknown pruner '{kind}'; use median or none.")


def open_study(ctx: Context, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the study, or load it when it exists (same command, same storage: the study continues)."""
    import optuna

    cfg = ctx.cfg
    storage = storage or open_storage(ctx.storage_url, cfg.heartbeat_interval, cfg.grace_period)
    study = optuna.create_study(
        storage=storage,
        study_name=ctx.study_name,
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler(cfg.sampler, cfg.seed, 0, cfg.n_startup_trials),
        pruner=make_pruner(cfg.pruner, cfg.n_evaluations, cfg.n_startup_trials),
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"Study {ctx.study_name} exists and minimizes; pick another --study-name.")
    budget = cfg.n_timesteps
    if budget is None and ctx.algo not in BUDGET_CHOICES:
        budget = ctx.base.get(ctx.budget_key)  # the env's usual budget, which every trial then trains
    wanted = {
        "algo": ctx.algo,
        "env_id": ctx.course_id,
        "env_kwargs": ctx.env_kwargs,
        "env_tag": ctx.tag,
        "budget_key": ctx.budget_key,
        "budget": budget,
        "n_evaluations": cfg.n_evaluations,
    }
    have = study.user_attrs
    if not have:
        for k, v in wanted.items():
            study.set_user_attr(k, v)
        if cfg.warm_start and not study.trials:
            # Optuna's way to seed a search with a known point: TPE then models around a setting that works.
            study.enqueue_trial(default_params(ctx.algo, ctx.base), user_attrs={"warm_start": True})
    else:
        for k in ("algo", "env_id", "env_kwargs", "budget", "n_evaluations"):
            if k in have and have[k] != wanted[k]:
                raise UserError(
                    f"Study {ctx.study_name} was started with {k}={have[k]!r}, not {wanted[k]!r}; "
                    f"run it with the same settings or pick another --study-name."
                )
    return study


class PruneCallback(Callback):
    """Evaluates the policy by the course protocol at `points` (counts in the run's unit) inside the trial's one
    training run, reports each result to the trial (steps 1, 2, ...), and stops the run when the pruner says so.

    Evaluations go through deeprl.loop.evaluate_snapshot, so watching a trial never changes how it trains."""

    def __init__(self, trial: optuna.Trial, points: list[int], n_eval_episodes: int | None, seed: int, folder: Path):
        self.trial, self.points, self.n_eval_episodes, self.seed = trial, points, n_eval_episodes, seed
        self.folder = folder
        self.reported = 0
        self.last: tuple[dict, int] | None = None  # (figures, count) of the latest evaluation
        self.pruned = False

    def on_update(self, run: Run, count: int, snapshot: Snapshot) -> bool:
        if self.reported >= len(self.points) or count < self.points[self.reported]:
            return False
        self.reported += 1
        result = evaluate_snapshot(
            run,
            snapshot,
            self.folder / f"evaluation_{self.reported}",
            n_eval_episodes=self.n_eval_episodes,
            seed=self.seed,
        )
        self.last = (result, count)
        self.trial.report(result["result"], self.reported)
        self.pruned = self.trial.should_prune()
        return self.pruned


def objective(trial: optuna.Trial, ctx: Context) -> float:
    """One trial: one training run of the sampled settings, evaluated `n_evaluations` times (the last on the
    finished model); the objective is the last evaluation's result (mean - std)."""
    import optuna

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.train import train

    cfg = ctx.cfg
    hp = sample_hyperparams(trial, ctx.algo, ctx.base, cfg.n_timesteps)
    trial.set_user_attr("hyperparams", hp)
    budget = int(hp[ctx.budget_key])
    folder = ctx.log_root / f"trial_{trial.number}"
    k_max = max(1, min(cfg.n_evaluations, budget))
    watch = PruneCallback(
        trial, [budget * k // k_max for k in range(1, k_max)], cfg.n_eval_episodes, cfg.seed, folder / "evaluations"
    )
    run = train(
        ctx.algo,
        ctx.course_id,
        env_kwargs=ctx.env_kwargs,
        overrides=hp,
        seed=cfg.seed,
        log_folder=folder,
        show_progress=False,
        device=cfg.device,
        callbacks=[watch],
    )
    if watch.pruned:
        assert watch.last is not None  # a trial is pruned only after an evaluation was reported
        result, trained = watch.last
        _record(trial, run, result, trained)
        raise optuna.TrialPruned(f"pruned after evaluation {watch.reported} of {k_max}")
    result = evaluate(load_agent(run.run_dir), n_eval_episodes=cfg.n_eval_episodes, seed=cfg.seed)
    trial.report(result["result"], k_max)
    _record(trial, run, result, budget)
    return float(result["result"])


def _record(trial: optuna.Trial, run: Run, result: dict, trained: int) -> None:
    # Written once at the end: each attribute is a database commit.
    for key, value in (
        ("run_dir", str(run.run_dir)),
        ("mean_reward", result["mean_reward"]),
        ("std_reward", result["std_reward"]),
        ("trained", trained),
    ):
        trial.set_user_attr(key, value)


def run_worker(cfg: TuneConfig, echo: Callable[[str], None] = print) -> optuna.Study:
    """One worker: claim trial slots until the study has `n_trials` finished trials (or `timeout` passes)."""
    import optuna
    from optuna.trial import TrialState

    ctx = resolve(cfg)
    storage = open_storage(ctx.storage_url, cfg.heartbeat_interval, cfg.grace_period)
    study = open_study(ctx, storage)
    lock = ClaimLock(ctx.storage_url, ctx.study_name)
    me = worker_identity()
    started = time.monotonic()
    failures_in_a_row = 0
    try:
        while True:
            if cfg.timeout is not None and time.monotonic() - started >= cfg.timeout:
                echo(f"Timeout of {cfg.timeout:g} s reached; this worker stops.")
                break
            with lock.hold():
                for n in fail_abandoned_trials(study, me):
                    echo(f"trial {n}: its worker is gone; marked failed.")
                trials = study.get_trials(deepcopy=False)
                counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
                if counted >= cfg.n_trials:
                    break
                waiting = any(t.state == TrialState.WAITING for t in trials)
                study.sampler = make_sampler(cfg.sampler, cfg.seed, len(trials), cfg.n_startup_trials)
                if not waiting:
                    # Created with the worker's identity, so a kill at any moment after this leaves a trial
                    # that the next worker can tell is abandoned.
                    study.enqueue_trial({}, user_attrs={"worker": me})
                with warnings.catch_warnings():
                    # Optuna warns that heartbeats are meant for Study.optimize; _Heartbeat beats for ask/tell.
                    warnings.simplefilter("ignore", UserWarning)
                    trial = study.ask()
                if waiting:
                    trial.set_user_attr("worker", me)
            t0 = time.perf_counter()
            state, value, error = TrialState.COMPLETE, None, None
            with _Heartbeat(storage, trial._trial_id):
                try:
                    value = objective(trial, ctx)
                except optuna.TrialPruned:
                    state = TrialState.PRUNED
                except (UserError, ValueError, RuntimeError, FloatingPointError, MemoryError) as exc:
                    # A sampled setting the algorithm refuses, or a run that diverged: this trial fails, the
                    # study goes on.
                    state, error = TrialState.FAIL, f"{exc.__class__.__name__}: {exc}"
                    trial.set_user_attr("fail_reason", error)
                except BaseException as exc:  # Ctrl-C or a bug of ours: fail the trial now, then stop
                    trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {exc}")
                    study.tell(trial, state=TrialState.FAIL)
                    raise
            seconds = time.perf_counter() - t0
            trial.set_user_attr("seconds", round(seconds, 2))
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
                failures_in_a_row = 0
            else:
                study.tell(trial, state=state)
            echo(_trial_line(study, trial.number, state, value, error, seconds))
            if state == TrialState.FAIL:
                failures_in_a_row += 1
                if failures_in_a_row >= 5:
                    raise UserError(f"Five trials in a row failed; the last one said: {error}")
    finally:
        lock.close()
    return study
