"""Hyperparameter search with Optuna (the course's bonus unit), in the spirit of RL-Zoo's `--optimize`.

A study lives in an Optuna RDB storage (SQLite under DEEPRL_HOME by default, PostgreSQL for many machines), so:

- running the same command again continues the study: `n_trials` is the study's target of finished
  (complete or pruned) trials, and each worker stops once the study has them;
- several workers (`--n-jobs K` on one machine, or the same command on other machines with a shared
  PostgreSQL URL) share one study; a worker claims a trial slot under a lock (a file lock for SQLite, an
  advisory lock for PostgreSQL), so N trials are run in total, each trial number once;
- a worker that dies mid-trial leaves its trial RUNNING; the next worker to claim a slot marks it FAILED:
  at once when the dead worker ran on this machine (its process is gone), otherwise once its heartbeat is
  older than the grace period (Optuna's RDB heartbeat).

Each trial is one training run through the public API (`deeprl.train.train`). A training callback evaluates it
with `deeprl.evaluation.evaluate` (the course protocol) at budget*k/K, k = 1..K-1, reports `result`
(mean - std) to the pruner, and stops the run when the pruner says so; the K-th evaluation is of the finished
model, and the objective is the last evaluation's result.

The package, one seam a module: `spaces` (what a trial samples), `storage` (where a study lives, the claim lock,
worker liveness), `objective` (the study, one trial, a worker), `report` (what a study found). Its names are
importable from `deeprl.tune` as they always were.
"""

from deeprl.tune.objective import (
    N_STARTUP_TRIALS,
    Context,
    PruneCallback,
    TuneConfig,
    make_pruner,
    make_sampler,
    objective,
    open_study,
    resolve,
    run_worker,
)
from deeprl.tune.report import (
    best_hyperparams,
    best_yaml,
    completed,
    load_study,
    save_plots,
    study_dir,
    study_report,
    write_best,
)
from deeprl.tune.spaces import (
    BUDGET_CHOICES,
    NET_KEYS,
    NET_SIZES,
    SPACES,
    budget_key,
    default_params,
    sample_hyperparams,
    tunable,
)
from deeprl.tune.storage import (
    STORAGE_ENV,
    ClaimLock,
    default_storage,
    driver_url,
    fail_abandoned_trials,
    open_storage,
    worker_identity,
)

__all__ = [
    "N_STARTUP_TRIALS",
    "Context",
    "PruneCallback",
    "TuneConfig",
    "make_pruner",
    "make_sampler",
    "objective",
    "open_study",
    "resolve",
    "run_worker",
    "best_hyperparams",
    "best_yaml",
    "completed",
    "load_study",
    "save_plots",
    "study_dir",
    "study_report",
    "write_best",
    "BUDGET_CHOICES",
    "NET_KEYS",
    "NET_SIZES",
    "SPACES",
    "budget_key",
    "default_params",
    "sample_hyperparams",
    "tunable",
    "STORAGE_ENV",
    "ClaimLock",
    "default_storage",
    "driver_url",
    "fail_abandoned_trials",
    "open_storage",
    "worker_identity",
]
