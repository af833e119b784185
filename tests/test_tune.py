"""deeprl tune: valid search spaces, pruning, killed workers, many workers on SQLite and PostgreSQL, the best YAML.

Real runs use Q-Learning on FrozenLake 4x4 (no slippery) with a few hundred episodes: a trial takes well under a
second, so the whole file stays fast.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from deeprl import tune as T
from deeprl.algos import get_algo
from deeprl.cli import main
from deeprl.errors import UserError
from deeprl.train import default_hyperparams, merge_hyperparams

FROZEN = ["--env", "FrozenLake-v1", "--env-kwargs", "map_name:4x4", "is_slippery:False"]
FAST = ["--n-timesteps", "400", "--n-evaluations", "2", "--n-eval-episodes", "5"]


def deadline_poll(check, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def frozen_cfg(storage, **kw) -> T.TuneConfig:
    base = dict(
        algo="qlearning",
        env_id="FrozenLake-v1",
        env_kwargs={"map_name": "4x4", "is_slippery": False},
        n_trials=3,
        n_timesteps=400,
        n_evaluations=2,
        n_eval_episodes=5,
        storage=storage,
        n_startup_trials=2,
    )
    base.update(kw)
    return T.TuneConfig(**base)


def study_of(storage, name="qlearning-FrozenLake-v1-4x4-no_slippery"):
    # through deeprl's storage opener, which takes the lock a worker holds while it creates Optuna's tables: a
    # plain load_study polling a fresh SQLite file can race the worker's CREATE TABLE and fail
    return optuna.load_study(study_name=name, storage=T.open_storage(storage, heartbeat_interval=None))


def worker_cmd(storage, n_trials, *extra):
    return [
        sys.executable,
        "-m",
        "deeprl",
        "tune",
        "--algo",
        "qlearning",
        *FROZEN,
        "--n-trials",
        str(n_trials),
        "--storage",
        storage,
        *FAST,
        *extra,
    ]


def check_shared_study(storage, n_trials, both_ran=True):
    trials = study_of(storage).get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(n_trials))  # total = N, no number twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    if both_ran:
        pids = {t.user_attrs["worker"]["pid"] for t in trials}
        assert len(pids) == 2, "both workers should have run trials"


# --- search spaces --------------------------------------------------------------------------------------------

ENV_FOR = {
    "qlearning": "Taxi-v3",
    "reinforce": "CartPole-v1",
    "ppo": "LunarLander-v2",
    "a2c": "CartPole-v1",
    "dqn": "CartPole-v1",
}


@pytest.mark.parametrize("algo", T.tunable())
def test_sampled_hyperparams_are_valid_for_each_algorithm(algo):
    module = get_algo(algo)
    env = ENV_FOR[algo]
    base = default_hyperparams(algo, module, env, env)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    for _ in range(150):
        trial = study.ask()
        hp = T.sample_hyperparams(trial, algo, base)
        assert set(hp) <= set(module.DEFAULTS), set(hp) - set(module.DEFAULTS)
        assert T.budget_key(base) in hp and hp[T.budget_key(base)] > 0
        merged = merge_hyperparams(algo, module, env, env, None, hp, None)  # what `deeprl train` accepts
        for key, value in hp.items():
            default = module.DEFAULTS[key]
            if isinstance(default, bool):
                assert isinstance(value, bool)
            elif isinstance(default, float):
                assert isinstance(value, (int, float)) and value >= 0
            assert merged[key] == value
        if "policy_kwargs" in hp:
            from deeprl.policies import parse_policy_kwargs

            assert parse_policy_kwargs(hp["policy_kwargs"])["net_arch"]["pi"][0] in (32, 64, 256)
        if "batch_size" in hp and "n_steps" in hp:
            assert (hp["n_steps"] * merged.get("n_envs", 1)) % hp["batch_size"] == 0
        study.tell(trial, 0.0)


def test_ppo_space_keeps_minibatches_whole_even_without_ppo():
    # The constraint does not wait for deeprl/algos/ppo.py: a PPO-shaped DEFAULTS with 3 envs.
    base = {
        "n_timesteps": 1000,
        "n_steps": 128,
        "batch_size": 64,
        "n_envs": 3,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "learning_rate": 3e-4,
        "ent_coef": 0.0,
        "clip_range": 0.2,
        "n_epochs": 10,
        "net_arch": [64, 64],
        "max_grad_norm": 0.5,
        "vf_coef": 0.5,
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(200):
        hp = T.sample_hyperparams(study.ask(), "ppo", base)
        assert (hp["n_steps"] * 3) % hp["batch_size"] == 0 and hp["batch_size"] <= hp["n_steps"] * 3
        assert len(hp["net_arch"]) == 2 and hp["net_arch"][0] in (32, 64, 256)
        assert 1e-5 <= hp["learning_rate"] <= 3e-3 and hp["n_timesteps"] == 1000
    fixed = optuna.trial.FixedTrial(
        {
            "n_steps": 32,
            "batch_size": 512,
            "gamma": 0.99,
            "learning_rate": 1e-4,
            "ent_coef": 1e-3,
            "clip_range": 0.2,
            "n_epochs": 4,
            "gae_lambda": 0.95,
            "max_grad_norm": 0.5,
            "vf_coef": 0.5,
            "net_arch": "small",
        }
    )
    assert T.sample_hyperparams(fixed, "ppo", base)["batch_size"] == 96  # the whole rollout, 32 steps x 3 envs


def test_qlearning_budget_is_episodes():
    base = default_hyperparams("qlearning", get_algo("qlearning"), "Taxi-v3", "Taxi-v3")
    assert T.budget_key(base) == "n_training_episodes"
    trial = optuna.create_study().ask()
    assert T.sample_hyperparams(trial, "qlearning", base, budget=300)["n_training_episodes"] == 300
    trial = optuna.create_study().ask()
    assert T.sample_hyperparams(trial, "qlearning", base)["n_training_episodes"] in T.BUDGET_CHOICES["qlearning"]


# --- one worker: pruning, resuming, YAML, show ----------------------------------------------------------------


def test_pruner_stops_a_poor_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    cfg = T.TuneConfig(
        algo="qlearning",
        env_id="Taxi-v3",
        n_trials=3,
        n_timesteps=2000,
        n_evaluations=2,
        n_eval_episodes=5,
        storage=storage,
        n_startup_trials=2,
    )
    study = T.open_study(T.resolve(cfg))
    # Two of the course's settings, then one that cannot learn Taxi in 1000 episodes: tiny steps, and
    # exploration that never decays.
    course = {"learning_rate": 0.7, "decay_rate": 0.005, "gamma": 0.95, "min_epsilon": 0.05}
    study.enqueue_trial(course)
    study.enqueue_trial({**course, "learning_rate": 0.5})
    study.enqueue_trial({"learning_rate": 0.05, "decay_rate": 1e-4, "gamma": 0.8, "min_epsilon": 0.1})
    lines = []
    T.run_worker(cfg, echo=lines.append)
    trials = study_of(storage, "qlearning-Taxi-v3").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED], lines
    assert trials[2].params["learning_rate"] == 0.05
    assert list(trials[2].intermediate_values) == [1]  # stopped after its first of two evaluations
    assert "pruned after evaluation 1" in lines[-1]
    # each trial is one training run; the pruner stopped the poor one inside it (a callback), with its model saved
    import json

    status = [json.loads((Path(t.user_attrs["run_dir"]) / "config.json").read_text())["status"] for t in trials]
    assert status == ["finished", "finished", "stopped"]
    assert all(len(list(Path(t.user_attrs["run_dir"]).parent.iterdir())) == 1 for t in trials)


def test_cli_tune_resume_yaml_and_show(tmp_path, cli):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "best.yml"
    args = ["tune", "--algo", "qlearning", *FROZEN, *FAST, "--storage", storage, "--seed", "3", "--out", str(out)]
    assert main([*args, "--n-trials", "2"]) == 0
    assert len(study_of(storage).trials) == 2
    assert main([*args, "--n-trials", "3"]) == 0  # the same study goes on to 3 trials
    study = study_of(storage)
    assert [t.number for t in study.trials] == [0, 1, 2]
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)

    data = yaml.safe_load(out.read_text())
    assert list(data) == ["FrozenLake-v1-4x4-no_slippery"]
    assert data["FrozenLake-v1-4x4-no_slippery"] == best.user_attrs["hyperparams"]
    # `deeprl train -c` takes the file unchanged
    r = cli("train", "--algo", "qlearning", *FROZEN, "-c", out, "-f", tmp_path / "logs", "--quiet")
    assert r.returncode == 0, r.stderr
    import json

    config = json.loads(next((tmp_path / "logs" / "qlearning").glob("*_1/config.json")).read_text())
    for k, v in best.user_attrs["hyperparams"].items():
        assert config["hyperparams"][k] == v

    plots = tmp_path / "plots"
    assert main(["tune", "--show", "--storage", storage, "--plots", str(plots)]) == 0
    for name in ("optimization_history.png", "param_importances.png", "intermediate_values.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("algo", ["ppo", "qlearning"])
def test_warm_start_first_trial_trains_the_defaults(algo):
    env = ENV_FOR[algo]
    base = default_hyperparams(algo, get_algo(algo), env, env)
    params = T.default_params(algo, base)
    assert params, "the defaults should be expressible in the search space"
    hp = T.sample_hyperparams(optuna.trial.FixedTrial(params), algo, base, 1000)
    for key, value in hp.items():
        if key == "policy_kwargs" and base[key] is None:  # None means SB3's default MLP: 64 x 64, tanh
            assert value == {"net_arch": [64, 64], "activation_fn": "tanh"}
        elif key != T.budget_key(base):
            assert value == base[key], key


def test_warm_started_study_begins_with_the_defaults(tmp_path):
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    study = T.run_worker(frozen_cfg(storage, n_trials=2, warm_start=True), echo=lambda _: None)
    first = study.trials[0]
    assert first.user_attrs.get("warm_start") is True
    base = default_hyperparams("qlearning", get_algo("qlearning"), "FrozenLake-v1", "FrozenLake-v1")
    assert {k: first.params[k] for k in ("learning_rate", "gamma", "decay_rate")} == {
        k: base[k] for k in ("learning_rate", "gamma", "decay_rate")
    }
    assert len(study.trials) == 2 and study.trials[1].params != first.params


def test_same_seed_same_study(tmp_path):
    a = T.run_worker(frozen_cfg(f"sqlite:///{tmp_path / 'a.db'}", n_trials=2, seed=5), echo=lambda _: None)
    b = T.run_worker(frozen_cfg(f"sqlite:///{tmp_path / 'b.db'}", n_trials=2, seed=5), echo=lambda _: None)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]


def test_bad_input_is_one_sentence(tmp_path, capsys):
    assert main(["tune", "--algo", "qlearning", "--env", "Taxi-v3", "--storage", "nonsense"]) == 2
    assert "is not a database URL" in capsys.readouterr().err
    assert main(["tune", "--algo", "qlerning", "--env", "Taxi-v3"]) == 2
    assert main(["tune", "--show", "--storage", f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    assert "no study" in capsys.readouterr().err
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    T.run_worker(frozen_cfg(storage, n_trials=1), echo=lambda _: None)
    with pytest.raises(UserError, match="was started with budget=400"):
        T.run_worker(frozen_cfg(storage, n_trials=2, n_timesteps=800))


# --- dead workers ---------------------------------------------------------------------------------------------


def test_killed_worker_trial_is_failed_and_study_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    # A budget large enough that the first trial is still running when it is killed.
    slow = ["--n-timesteps", "60000", "--n-evaluations", "1", "--n-eval-episodes", "5"]
    cmd = [
        sys.executable,
        "-m",
        "deeprl",
        "tune",
        "--algo",
        "qlearning",
        *FROZEN,
        "--n-trials",
        "1",
        "--storage",
        storage,
        *slow,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def running():
            try:
                return [t for t in study_of(storage).get_trials() if t.state == TrialState.RUNNING]
            except KeyError:  # the study is not created yet
                return None

        victim = deadline_poll(running, what="a RUNNING trial")[0]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert study_of(storage).trials[victim.number].state == TrialState.RUNNING  # nobody told it

    lines = []
    # The same command resumes: the abandoned trial is failed at once (its process is gone) and one trial runs.
    T.run_worker(frozen_cfg(storage, n_trials=1, n_timesteps=60000, n_evaluations=1), echo=lines.append)
    study = study_of(storage)
    states = [t.state for t in study.trials]
    assert states[victim.number] == TrialState.FAIL
    assert study.trials[victim.number].user_attrs["fail_reason"] == "its worker process died"
    assert states.count(TrialState.COMPLETE) == 1 and len(states) == 2
    assert lines[0] == f"trial {victim.number}: its worker is gone; marked failed."


def test_silent_remote_worker_fails_after_grace_period(tmp_path):
    # A worker on another machine cannot be checked for a pid: its heartbeat going stale is what fails it.
    storage = T.open_storage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    elsewhere = {**T.worker_identity(), "host": "another-machine"}
    study.enqueue_trial({}, user_attrs={"worker": elsewhere})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    assert T.fail_abandoned_trials(study) == []  # alive as far as anyone can tell
    assert deadline_poll(lambda: T.fail_abandoned_trials(study), what="the stale trial") == [trial.number]
    assert study.trials[0].state == TrialState.FAIL


# --- many workers ---------------------------------------------------------------------------------------------


def _two_workers(storage, n_trials=6):
    first = subprocess.Popen(worker_cmd(storage, n_trials), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(
        worker_cmd(storage, n_trials), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    outs = [p.communicate(timeout=240)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    return outs


def test_two_workers_share_a_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    _two_workers(storage, n_trials=6)
    check_shared_study(storage, 6)


def test_n_jobs_runs_worker_processes(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'jobs.db'}"
    # This process is one worker, --n-jobs 2 starts one more; this one is warm and may finish the study before
    # the other has started, so only the sharing rules are checked here (the tests below start two cold ones).
    assert main(worker_cmd(storage, 5, "--n-jobs", "2")[3:]) == 0
    check_shared_study(storage, 5, both_ran=False)
    out = capsys.readouterr().out
    assert "[worker " in out and "Best hyperparameters written to" in out


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 in a temp dir (Debian's postgresql package), stopped afterwards."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (Debian package: postgresql)")
    root = Path(tempfile.mkdtemp(prefix="deeprl-pg-"))
    data, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        pw = pwd.getpwnam("postgres")
        for p in (root, sockdir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(*args, **kw):
        return subprocess.run([*as_user, *map(str, args)], capture_output=True, text=True, timeout=120, **kw)

    r = pg(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    assert r.returncode == 0, r.stderr
    r = pg(
        bindir / "pg_ctl",
        "-D",
        data,
        "-l",
        root / "log",
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1",
        "start",
    )
    assert r.returncode == 0, r.stderr + (root / "log").read_text()
    try:
        deadline_poll(
            lambda: pg(bindir / "pg_isready", "-h", "127.0.0.1", "-p", port).returncode == 0,
            what="PostgreSQL to accept connections",
        )
        r = pg(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "tune")
        assert r.returncode == 0, r.stderr
        yield f"postgresql://postgres@127.0.0.1:{port}/tune"
    finally:
        pg(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_a_postgresql_study(postgres_url):
    _two_workers(postgres_url, n_trials=6)
    check_shared_study(postgres_url, 6)
    assert main(["tune", "--show", "--storage", postgres_url]) == 0
