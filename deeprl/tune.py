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

Each trial trains through the public API (`deeprl.train.train`) in `n_evaluations` chunks: train to
budget*k/K, evaluate with `deeprl.evaluation.evaluate` (the course protocol), report `result` (mean - std)
to the pruner, then continue the same run with `resume=True`. The objective is the last evaluation's result.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from deeprl.errors import UserError

STORAGE_ENV = "DEEPRL_TUNE_STORAGE"
N_STARTUP_TRIALS = 5  # random trials before TPE models the space, and before the median pruner prunes (RL-Zoo)

# Network sizes by name, as RL-Zoo samples them (Optuna's categorical choices must be plain values).
NET_SIZES = {"tiny": 32, "small": 64, "medium": 256}
# Names an algorithm may give its hidden-layer sizes; the first one in its DEFAULTS is tuned.
NET_KEYS = ("net_arch", "hidden_sizes", "hidden", "h_size", "hidden_size")
EPISODE_BUDGET = "n_training_episodes"
# Settings that make a trial trained in chunks (resume after each evaluation) the same as one run.
CONTINUATION = {"save_replay_buffer": True}


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


# --------------------------------------------------------------------------------------------------------------
# Search spaces, keyed by algorithm name. Each returns proposals; `sample_hyperparams` keeps only the keys the
# algorithm has (its DEFAULTS), so a space may name keys an algorithm spells differently or lacks.


def _lr_key(base: dict) -> str:
    return "learning_rate" if "learning_rate" in base or "lr" not in base else "lr"


def _net(trial, base: dict) -> dict:
    """Hidden-layer sizes under whichever key the algorithm uses, in the shape its default has."""
    for key in NET_KEYS:
        default = base.get(key)
        if isinstance(default, (list, tuple)) and default and all(isinstance(x, int) for x in default):
            size = NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]
            return {key: [size] * len(default)}
        if isinstance(default, int) and not isinstance(default, bool):
            return {key: NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]}
    if "policy_kwargs" in base:  # SB3's policy_kwargs: {net_arch: [...], activation_fn: ...}
        size = NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]
        kwargs = dict(base["policy_kwargs"]) if isinstance(base["policy_kwargs"], dict) else {}
        kwargs.pop("activation", None)
        kwargs["net_arch"] = [size, size]
        kwargs["activation_fn"] = trial.suggest_categorical("activation", ["tanh", "relu"])
        return {"policy_kwargs": kwargs}
    return {}


def _activation(trial, base: dict) -> dict:
    for key in ("activation", "activation_fn"):
        if base.get(key) in ("tanh", "relu"):
            return {key: trial.suggest_categorical("activation", ["tanh", "relu"])}
    return {}


def _largest_divisor_at_most(total: int, limit: int) -> int:
    limit = max(1, min(limit, total))
    return next(d for d in range(limit, 0, -1) if total % d == 0)


def space_ppo(trial, base: dict) -> dict:
    hp = {
        # RL-Zoo also offers 8 and 16 steps and batches of 8 and 16: on a CPU those make a trial
        # several times slower per env step (many tiny gradient steps), so they are left out.
        "n_steps": trial.suggest_categorical("n_steps", [32, 64, 128, 256, 512, 1024, 2048]),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 4, 5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
    }
    # Minibatches must tile one rollout (n_steps * n_envs transitions) exactly.
    n_envs = int(base.get("n_envs") or 1)
    rollout = hp["n_steps"] * n_envs
    if "batch_size" in base:
        batch = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
        hp["batch_size"] = _largest_divisor_at_most(rollout, batch)
    else:
        for key in ("num_minibatches", "n_minibatches"):
            if key in base:
                wanted = trial.suggest_categorical("num_minibatches", [1, 2, 4, 8, 16, 32])
                hp[key] = _largest_divisor_at_most(rollout, wanted)
                break
    if "n_envs" in base:
        hp["n_envs"] = n_envs
    return {**hp, **_net(trial, base), **_activation(trial, base)}


def space_a2c(trial, base: dict) -> dict:
    hp = {
        "n_steps": trial.suggest_categorical("n_steps", [5, 8, 16, 32, 64, 128, 256, 512]),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0]),
    }
    if isinstance(base.get("normalize_advantage"), bool):
        hp["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [False, True])
    if base.get("optimizer") in ("rmsprop", "adam"):  # RL-Zoo's use_rms_prop
        hp["optimizer"] = trial.suggest_categorical("optimizer", ["rmsprop", "adam"])
    return {**hp, **_net(trial, base), **_activation(trial, base)}


def space_dqn(trial, base: dict) -> dict:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 128, 256])
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    hp = {
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 100, 128, 256, 512]),
        # 1e6 frames of Atari would not fit this kind of machine next to other work; 1e5 is the course's size
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000]),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 1000, 5000, 10000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 5000, 10000, 20000]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
    }
    return {**hp, **_net(trial, base)}


def space_reinforce(trial, base: dict) -> dict:
    hp = {
        _lr_key(base): trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0]),
    }
    return {**hp, **_net(trial, base)}


def space_qlearning(trial, base: dict) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.05, 1.0),
        "gamma": trial.suggest_categorical("gamma", [0.8, 0.9, 0.95, 0.98, 0.99, 0.995]),
        "decay_rate": trial.suggest_float("decay_rate", 1e-4, 5e-2, log=True),
        "min_epsilon": trial.suggest_categorical("min_epsilon", [0.0, 0.01, 0.05, 0.1]),
    }


SPACES: dict[str, Callable] = {
    "qlearning": space_qlearning,
    "reinforce": space_reinforce,
    "ppo": space_ppo,
    "a2c": space_a2c,
    "dqn": space_dqn,
}
# Budgets sampled when the user fixes none (Q-Learning: episodes); other algorithms train the env's usual budget.
BUDGET_CHOICES = {"qlearning": [1000, 2000, 5000, 10000, 25000]}


def budget_key(base: dict) -> str:
    """The key that sets how much an algorithm trains: env steps, or episodes (Q-Learning, course REINFORCE)."""
    if base.get("n_timesteps") is not None or EPISODE_BUDGET not in base:
        return "n_timesteps"
    return EPISODE_BUDGET


def tunable() -> list[str]:
    from deeprl.algos import available

    return [name for name in available() if name in SPACES]


def sample_hyperparams(trial, algo: str, base: dict, budget: int | None = None) -> dict:
    """Hyperparameters for one trial: valid for `algo` (keys from its DEFAULTS, constraints met).

    `base` is what the algorithm would train with for this env (DEFAULTS < hyperparams/<algo>.yml). `budget`
    fixes the training budget; without it, an episode budget is sampled and a step budget is the env default.
    """
    if algo not in SPACES:
        raise UserError(f"deeprl tune has no search space for {algo}; tunable: {', '.join(tunable())}.")
    proposals = SPACES[algo](trial, base)
    hp = {k: v for k, v in proposals.items() if k in base}
    key = budget_key(base)
    if budget is not None:
        hp[key] = int(budget)
    elif algo in BUDGET_CHOICES:
        hp[key] = trial.suggest_categorical(key, BUDGET_CHOICES[algo])
    elif base.get(key) is not None:
        hp[key] = int(base[key])
    else:
        raise UserError(f"{algo} has no default training budget for this env; give one with --n-timesteps.")
    return hp


class _DefaultsProbe:
    """A stand-in trial that answers each suggest_* with the algorithm's own setting for this env, where the
    search space can express it; the answers become the first trial of a warm-started study."""

    def __init__(self, base: dict):
        self.base, self.params = base, {}

    def _default(self, name: str):
        if name == "learning_rate":
            value = self.base.get(_lr_key(self.base))
            return value if isinstance(value, (int, float)) else None
        if name == "net_arch":
            sizes = next((self.base[k] for k in NET_KEYS if self.base.get(k) is not None), None)
            if sizes is None and "policy_kwargs" in self.base:
                kwargs = self.base["policy_kwargs"] if isinstance(self.base["policy_kwargs"], dict) else {}
                sizes = kwargs.get("net_arch", [64, 64])  # SB3's default MLP, which ours equals
            size = sizes[0] if isinstance(sizes, (list, tuple)) and sizes else sizes
            return next((k for k, v in NET_SIZES.items() if v == size), None)
        if name == "activation":
            kwargs = self.base.get("policy_kwargs") if isinstance(self.base.get("policy_kwargs"), dict) else {}
            return self.base.get("activation") or kwargs.get("activation_fn") or "tanh"
        return self.base.get(name)

    def suggest_categorical(self, name, choices):
        value = self._default(name)
        if value in choices:
            self.params[name] = value
            return value
        return choices[0]

    def suggest_float(self, name, low, high, log=False):
        value = self._default(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
            self.params[name] = float(value)
            return float(value)
        return low

    def suggest_int(self, name, low, high, log=False):
        value = self._default(name)
        if isinstance(value, int) and low <= value <= high:
            self.params[name] = value
            return value
        return low


def default_params(algo: str, base: dict) -> dict:
    """The search space's parameters that reproduce the env's default settings (those it can express)."""
    probe = _DefaultsProbe(base)
    SPACES[algo](probe, base)
    return probe.params


# --------------------------------------------------------------------------------------------------------------
# Storage, locks, worker liveness


def default_storage() -> str:
    from deeprl.paths import home

    # Its own file: Optuna's tables (and its alembic_version) stay out of the leaderboard database.
    return os.environ.get(STORAGE_ENV) or f"sqlite:///{home() / 'optuna.db'}"


def driver_url(url: str) -> str:
    """postgresql:// means psycopg2 to SQLAlchemy 2.0 and psycopg (3) to 2.1; deeprl installs psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def open_storage(url: str, heartbeat_interval: int | None = 30, grace_period: int | None = None):
    import sqlalchemy
    from optuna.storages import RDBStorage

    _quiet_optuna()
    url = driver_url(url)
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:
        raise UserError(f"'{url}' is not a database URL; use sqlite:///path/to/file.db or "
                        f"postgresql://user@host:port/dbname.") from None
    engine_kwargs, lock_path = {}, None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            db = Path(parsed.database).expanduser()
            db.parent.mkdir(parents=True, exist_ok=True)
            lock_path = _lock_path(db)
        # Workers write at the same time; wait for the file lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif parsed.get_backend_name() in ("postgresql", "mysql"):
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            # Workers starting together would all create Optuna's tables at once: one at a time on SQLite,
            # and a retry elsewhere (the loser of that race finds the tables made).
            with _flock(lock_path):
                return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                  grace_period=grace_period)
        except ImportError:
            raise UserError(f"The database driver for {parsed.get_backend_name()} is not installed; for PostgreSQL: "
                            f"pip install 'psycopg[binary]'.") from None
        except sqlalchemy.exc.ArgumentError:
            raise UserError(f"'{url}' is not a database URL; use sqlite:///path/to/file.db or "
                            f"postgresql://user@host:port/dbname.") from None
        except sqlalchemy.exc.DBAPIError as exc:
            if attempt == 4:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "no connection"
                raise UserError(f"Cannot open the study storage {parsed.render_as_string(hide_password=True)} "
                                f"({reason}).") from None
            time.sleep(0.2 * (attempt + 1))


def _lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


@contextmanager
def _flock(path: Path | None):
    if path is None:
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ClaimLock:
    """Serializes "count the study's trials, then start one" across workers, so N means N.

    SQLite (one machine): an flock on a file beside the database. PostgreSQL: a session advisory lock keyed by
    the study name. Other databases: a lock within this process only (two workers may then overshoot by one).
    """

    def __init__(self, url: str, study_name: str):
        import sqlalchemy

        self._thread_lock = threading.Lock()
        self._path = None
        self._engine = None
        parsed = sqlalchemy.engine.make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._path = _lock_path(Path(parsed.database).expanduser())
        elif backend == "postgresql":
            self._engine = sqlalchemy.create_engine(driver_url(url), poolclass=sqlalchemy.pool.NullPool)
            digest = hashlib.blake2b(f"deeprl-tune:{study_name}".encode(), digest_size=8).digest()
            self._key = int.from_bytes(digest, "big", signed=True)

    @contextmanager
    def hold(self):
        with self._thread_lock:
            if self._path is not None:
                with _flock(self._path):
                    yield
            elif self._engine is not None:
                import sqlalchemy

                with self._engine.connect() as conn:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                    try:
                        yield
                    finally:
                        conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                        conn.commit()
            else:
                yield

    def close(self):
        if self._engine is not None:
            self._engine.dispose()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone (or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def worker_identity() -> dict:
    pid = os.getpid()
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = None
    return {"host": socket.gethostname(), "boot": _read("/proc/sys/kernel/random/boot_id"), "pidns": pidns,
            "pid": pid, "start": _process_start(pid)}


def _is_dead_local_worker(worker: dict, me: dict) -> bool:
    # Only a process this machine (and pid namespace) can see is judged here; others wait for the heartbeat.
    if not me["boot"] or not me["start"]:
        return False
    if (worker.get("host"), worker.get("boot"), worker.get("pidns")) != (me["host"], me["boot"], me["pidns"]):
        return False
    return _process_start(int(worker.get("pid", -1))) != worker.get("start")


def fail_abandoned_trials(study, me: dict | None = None) -> list[int]:
    """Mark FAILED the RUNNING trials whose worker is gone; returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    me = me or worker_identity()
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if isinstance(worker, dict) and _is_dead_local_worker(worker, me):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "its worker process died")
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period: any machine
    return sorted(before & {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))})


class _Heartbeat:
    """Optuna's RDB heartbeat for a trial we run ourselves (ask/tell), on a daemon thread."""

    def __init__(self, storage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        interval = storage.get_heartbeat_interval()
        self.thread = None
        if interval:
            self.thread = threading.Thread(target=self._beat, args=(interval,), daemon=True)

    def _beat(self, interval):
        while not self.stop.wait(interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a missed beat is retried; a dead database shows up in the trial itself
                pass

    def __enter__(self):
        if self.thread is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


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
    return Context(cfg, algo, spec.course_id, kwargs, tag, base, budget_key(base), log_root, study_name,
                   cfg.storage or default_storage())


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def make_sampler(kind: str, seed: int, trial_number: int, n_startup_trials: int = N_STARTUP_TRIALS):
    import optuna

    # One seed per trial number: a single worker repeats itself exactly, and workers that share a study
    # do not draw the same random points.
    s = (seed * 1_000_003 + trial_number) % 2**32
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=s)
    if kind == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=n_startup_trials, multivariate=True,
                                          constant_liar=True, seed=s)
    raise UserError(f"Unknown sampler '{kind}'; use tpe or random.")


def make_pruner(kind: str, n_evaluations: int, n_startup_trials: int = N_STARTUP_TRIALS):
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_evaluations // 3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"Unknown pruner '{kind}'; use median or none.")


def open_study(ctx: Context, storage=None):
    """Create the study, or load it when it exists (same command, same storage: the study continues)."""
    import optuna

    cfg = ctx.cfg
    storage = storage or open_storage(ctx.storage_url, cfg.heartbeat_interval, cfg.grace_period)
    study = optuna.create_study(storage=storage, study_name=ctx.study_name, direction="maximize",
                                load_if_exists=True,
                                sampler=make_sampler(cfg.sampler, cfg.seed, 0, cfg.n_startup_trials),
                                pruner=make_pruner(cfg.pruner, cfg.n_evaluations, cfg.n_startup_trials))
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"Study {ctx.study_name} exists and minimizes; pick another --study-name.")
    budget = cfg.n_timesteps
    if budget is None and ctx.algo not in BUDGET_CHOICES:
        budget = ctx.base.get(ctx.budget_key)  # the env's usual budget, which every trial then trains
    wanted = {"algo": ctx.algo, "env_id": ctx.course_id, "env_kwargs": ctx.env_kwargs, "env_tag": ctx.tag,
              "budget_key": ctx.budget_key, "budget": budget, "n_evaluations": cfg.n_evaluations}
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
                raise UserError(f"Study {ctx.study_name} was started with {k}={have[k]!r}, not {wanted[k]!r}; "
                                f"run it with the same settings or pick another --study-name.")
    return study


def _train_chunk(ctx: Context, hp: dict, target: int, folder: Path, first: bool):
    from deeprl.checkpoint import CHECKPOINT_FILE
    from deeprl.train import latest_run_dir, train

    key, cfg = ctx.budget_key, ctx.cfg
    common = dict(env_kwargs=ctx.env_kwargs, seed=cfg.seed, log_folder=folder, show_progress=False,
                  device=cfg.device)
    run_dir = None if first else latest_run_dir(folder, ctx.algo, ctx.tag)
    if run_dir is None or not (run_dir / CHECKPOINT_FILE).exists():
        # An algorithm that keeps no checkpoint at the end is retrained from scratch to the larger budget.
        # A replay buffer goes into the checkpoint, so the next chunk goes on with its memory (not in the YAML).
        keep = {k: v for k, v in CONTINUATION.items() if k in ctx.base and cfg.n_evaluations > 1}
        return train(ctx.algo, ctx.course_id, overrides={**hp, key: target, **keep}, **common)
    from deeprl.train import RunFinished

    try:  # a chunk whose target the last whole rollout already passed has nothing to train: its run is the model
        if key == "n_timesteps":
            return train(ctx.algo, ctx.course_id, resume=True, n_timesteps=target, **common)
        return train(ctx.algo, ctx.course_id, resume=True, overrides={key: target}, **common)
    except RunFinished as done:
        return done.run


def objective(trial, ctx: Context) -> float:
    import optuna

    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    cfg = ctx.cfg
    hp = sample_hyperparams(trial, ctx.algo, ctx.base, cfg.n_timesteps)
    trial.set_user_attr("hyperparams", hp)
    budget = int(hp[ctx.budget_key])
    folder = ctx.log_root / f"trial_{trial.number}"
    k_max = max(1, min(cfg.n_evaluations, budget))
    result = None
    for k in range(1, k_max + 1):
        target = budget * k // k_max
        run = _train_chunk(ctx, hp, target, folder, first=(k == 1))
        result = evaluate(load_agent(run.run_dir), n_eval_episodes=cfg.n_eval_episodes, seed=cfg.seed)
        trial.report(result["result"], k)
        if k < k_max and trial.should_prune():
            _record(trial, run, result, target)
            raise optuna.TrialPruned(f"pruned after evaluation {k} of {k_max}")
    _record(trial, run, result, target)
    return float(result["result"])


def _record(trial, run, result: dict, trained: int) -> None:
    # Written once at the end: each attribute is a database commit.
    for key, value in (("run_dir", str(run.run_dir)), ("mean_reward", result["mean_reward"]),
                       ("std_reward", result["std_reward"]), ("trained", trained)):
        trial.set_user_attr(key, value)


def run_worker(cfg: TuneConfig, echo: Callable[[str], None] = print):
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
                counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                              for t in trials)
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


def _trial_line(study, number: int, state, value, error, seconds: float) -> str:
    from optuna.trial import TrialState

    t = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    if state == TrialState.COMPLETE:
        line = (f"trial {number}: result {value:.2f} (mean {t.user_attrs.get('mean_reward', float('nan')):.2f} "
                f"+/- {t.user_attrs.get('std_reward', float('nan')):.2f}) in {seconds:.1f} s")
        try:
            best = study.best_trial
            line += f"; best {best.value:.2f} (trial {best.number})"
        except ValueError:
            pass
        return line
    if state == TrialState.PRUNED:
        steps = sorted(t.intermediate_values)
        last = t.intermediate_values[steps[-1]] if steps else float("nan")
        return f"trial {number}: pruned after evaluation {len(steps)} (result {last:.2f}) in {seconds:.1f} s"
    return f"trial {number}: failed ({error})"


# --------------------------------------------------------------------------------------------------------------
# Results


def load_study(storage_url: str | None = None, study_name: str | None = None):
    import optuna

    url = storage_url or default_storage()
    storage = open_storage(url, heartbeat_interval=None)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    names = [s.study_name for s in summaries]
    if not names:
        raise UserError(f"There is no study in {_show_url(url)}; start one with deeprl tune --algo ALGO --env ENV.")
    if study_name is None:
        if len(names) > 1:
            raise UserError(f"{_show_url(url)} holds several studies ({', '.join(names)}); pick one with "
                            f"--study-name.")
        study_name = names[0]
    if study_name not in names:
        from deeprl.errors import closest

        hints = closest(study_name, names)
        hint = f" Did you mean {hints[0]}?" if hints else ""
        raise UserError(f"No study named {study_name} in {_show_url(url)}.{hint} Studies: {', '.join(names)}.")
    return optuna.load_study(study_name=study_name, storage=storage)


def _show_url(url: str) -> str:
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def completed(study) -> list:
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: -t.value)


def best_hyperparams(study) -> tuple[object, dict]:
    done = completed(study)
    if not done:
        raise UserError(f"Study {study.study_name} has no completed trial yet.")
    best = done[0]
    return best, dict(best.user_attrs.get("hyperparams") or best.params)


def best_yaml(study) -> str:
    """The best trial as a hyperparameter file that `deeprl train -c FILE` takes unchanged (keyed by env)."""
    best, hp = best_hyperparams(study)
    attrs = study.user_attrs
    env_key = attrs.get("env_tag") or attrs.get("env_id")
    kwargs = attrs.get("env_kwargs") or {}
    env_arg = " --env-kwargs " + " ".join(f"{k}:{v}" for k, v in kwargs.items()) if kwargs else ""
    header = (f"# Best trial of Optuna study {study.study_name}: trial {best.number}, result {best.value:.2f} "
              f"(mean_reward - std_reward).\n"
              f"# Train with: deeprl train --algo {attrs.get('algo')} --env {attrs.get('env_id')}{env_arg} "
              f"-c THIS_FILE\n")
    return header + yaml.safe_dump({env_key: hp}, sort_keys=True, default_flow_style=False)


def write_best(study, path: str | Path) -> Path:
    from deeprl.modelio import atomic_write_bytes

    text = best_yaml(study)
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return path


def study_report(study, top: int = 5) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    attrs = study.user_attrs
    env = attrs.get("env_tag") or attrs.get("env_id", "?")
    lines = [f"Study {study.study_name}: {attrs.get('algo', '?')} on {env}, {len(trials)} trials ("
             + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ")"]
    done = completed(study)
    if not done:
        lines.append("No completed trial yet.")
        return "\n".join(lines)
    lines.append(f"Best {min(top, len(done))} by result (mean_reward - std_reward):")
    for t in done[:top]:
        hp = t.user_attrs.get("hyperparams") or t.params
        mean, std = t.user_attrs.get("mean_reward"), t.user_attrs.get("std_reward")
        figures = f"{t.value:9.2f}" + (f"  ({mean:.2f} +/- {std:.2f})" if mean is not None else "")
        lines.append(f"  trial {t.number:>4}: {figures}")
        lines.append("      " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(hp.items())))
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def save_plots(study, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Optimization history, parameter importances and intermediate values as PNG; returns (paths, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    _quiet_optuna()
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    saved, notes = [], []
    plots = [("optimization_history.png", ovm.plot_optimization_history),
             ("param_importances.png", ovm.plot_param_importances),
             ("intermediate_values.png", ovm.plot_intermediate_values)]
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            saved.append(out / name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes.append(f"{name} not drawn: {exc}")
    return saved, notes


def study_dir(study) -> Path:
    from deeprl.paths import home

    return home() / "tune" / _safe(study.study_name)
