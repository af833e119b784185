"""`deeprl tune`: search hyperparameters with Optuna; `deeprl tune --show`: the best trials and plots."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from deeprl.commands import seed

if TYPE_CHECKING:
    from deeprl.tune import TuneConfig

WORKER_FLAG = "--_worker"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna (pruned, resumable, many workers)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Search hyperparameters with Optuna: TPE sampling, median pruning on intermediate evaluations, "
        "a study kept in a database so the same command continues it and many workers share it.",
        epilog="examples:\n"
        "  deeprl tune --algo ppo --env LunarLander-v2 --n-trials 20 --n-timesteps 300000 --n-jobs 2\n"
        "  deeprl tune --show --study-name ppo-LunarLander-v2\n"
        "  deeprl train --algo ppo --env LunarLander-v2 -c ~/.cache/deeprl/tune/ppo-LunarLander-v2/best.yml\n"
        "  # many machines: the same command on each, with --storage postgresql://user@host:5432/db",
    )
    p.add_argument("--algo", help="qlearning, reinforce, ppo, a2c, dqn")
    p.add_argument("--env", help="course env id, e.g. LunarLander-v2")
    p.add_argument("--env-kwargs", nargs="*", metavar="K:V", help="env options, e.g. map_name:4x4 is_slippery:False")
    p.add_argument(
        "--n-trials",
        type=int,
        default=20,
        help="finished trials the study should hold; the same command again continues it (default 20)",
    )
    p.add_argument("--timeout", type=float, default=None, help="start no new trial after this many seconds")
    p.add_argument(
        "-n",
        "--n-timesteps",
        type=int,
        default=None,
        help="training budget per trial, in env steps (episodes for Q-Learning and REINFORCE); default: "
        "the env's usual budget",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default: $DEEPRL_TUNE_STORAGE, else DEEPRL_HOME/optuna.db); "
        "postgresql://user@host:port/db for workers on many machines",
    )
    p.add_argument("--study-name", default=None, help="default: ALGO-ENVTAG")
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    p.add_argument("--pruner", choices=["median", "none"], default="median")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes on this machine sharing the study")
    p.add_argument("--seed", type=seed, default=0, help="training seed of every trial, and the sampler's seed")
    p.add_argument("--n-evaluations", type=int, default=4, help="evaluations per trial, reported to the pruner")
    p.add_argument(
        "--n-startup-trials",
        type=int,
        default=5,
        help="random trials before TPE models the space and before the pruner prunes",
    )
    p.add_argument(
        "--warm-start",
        action="store_true",
        help="make the first trial the env's default settings (the course's), for TPE to improve on",
    )
    p.add_argument("--n-eval-episodes", type=int, default=None, help="episodes per evaluation (default: the env's)")
    p.add_argument("-f", "--log-folder", default=None, help="where trial runs go (default: DEEPRL_HOME/tune/STUDY)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="seconds between heartbeats; a trial silent for twice this is marked failed",
    )
    p.add_argument("--out", default=None, help="write the best hyperparameters here (YAML for deeprl train -c)")
    p.add_argument("--show", action="store_true", help="print the best trials and save plots; trains nothing")
    p.add_argument("--plots", default=None, help="folder for the --show plots (default: DEEPRL_HOME/tune/STUDY)")
    p.add_argument("--top", type=int, default=5, help="how many trials --show lists")
    p.add_argument(WORKER_FLAG, dest="worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.errors import UserError

    if args.show:
        return show(args)
    if not args.algo or not args.env:
        raise UserError("deeprl tune needs --algo and --env (or --show to see a study).")
    if args.n_jobs < 1:
        raise UserError("--n-jobs must be at least 1.")
    return tune(args)


def _config(args: argparse.Namespace) -> TuneConfig:
    from deeprl.envs import parse_env_kwargs
    from deeprl.tune import TuneConfig

    return TuneConfig(
        algo=args.algo,
        env_id=args.env,
        env_kwargs=parse_env_kwargs(args.env_kwargs),
        n_trials=args.n_trials,
        timeout=args.timeout,
        n_timesteps=args.n_timesteps,
        storage=args.storage,
        study_name=args.study_name,
        sampler=args.sampler,
        pruner=args.pruner,
        seed=args.seed,
        n_evaluations=args.n_evaluations,
        n_eval_episodes=args.n_eval_episodes,
        log_folder=args.log_folder,
        device=args.device,
        heartbeat_interval=args.heartbeat,
        n_startup_trials=args.n_startup_trials,
        warm_start=args.warm_start,
    )


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = [
        "tune",
        "--algo",
        args.algo,
        "--env",
        args.env,
        "--n-trials",
        str(args.n_trials),
        "--sampler",
        args.sampler,
        "--pruner",
        args.pruner,
        "--seed",
        str(args.seed),
        "--n-evaluations",
        str(args.n_evaluations),
        "--n-startup-trials",
        str(args.n_startup_trials),
        "--device",
        args.device,
        "--heartbeat",
        str(args.heartbeat),
        WORKER_FLAG,
    ]
    if args.env_kwargs:
        argv += ["--env-kwargs", *args.env_kwargs]
    for flag, value in (
        ("--timeout", args.timeout),
        ("--n-timesteps", args.n_timesteps),
        ("--storage", args.storage),
        ("--study-name", args.study_name),
        ("--n-eval-episodes", args.n_eval_episodes),
        ("--log-folder", args.log_folder),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def tune(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import sys

    from deeprl import tune as T

    cfg = _config(args)
    ctx = T.resolve(cfg)
    # Create the study (and check it matches) once, before any extra worker races to do it.
    T.open_study(ctx)
    children = []
    if args.n_jobs > 1:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        for _ in range(args.n_jobs - 1):
            children.append(subprocess.Popen([sys.executable, "-m", "deeprl", *_child_argv(args)], env=env))
    prefix = f"[worker {os.getpid()}] " if args.worker or args.n_jobs > 1 else ""
    try:
        T.run_worker(cfg, echo=lambda line: print(prefix + line, flush=True))
    except KeyboardInterrupt:
        print(
            f"deeprl: tuning interrupted; the study {ctx.study_name} is kept. Run the same command to continue it.",
            file=sys.stderr,
        )
        return 130
    finally:
        # Ctrl-C reaches the whole process group; other errors leave the workers to finish their share.
        codes = [c.wait() for c in children]
    if args.worker:
        return 0
    study = T.load_study(ctx.storage_url, ctx.study_name)
    print(T.study_report(study, top=3))
    if not T.completed(study):
        return 1 if any(codes) else 0
    out = T.write_best(study, args.out or ctx.log_root / "best.yml")
    env_arg = " --env-kwargs " + " ".join(args.env_kwargs) if args.env_kwargs else ""
    print(f"Best hyperparameters written to {out}")
    print(f"Train with: deeprl train --algo {ctx.algo} --env {ctx.course_id}{env_arg} -c {out}")
    print(
        f"See the study: deeprl tune --show --study-name {ctx.study_name}"
        + (f" --storage {args.storage}" if args.storage else "")
    )
    return 1 if any(codes) else 0


def show(args: argparse.Namespace) -> int:
    from deeprl import tune as T

    name = args.study_name
    if name is None and args.algo and args.env:
        name = T.resolve(_config(args)).study_name
    study = T.load_study(args.storage, name)
    print(T.study_report(study, top=args.top))
    saved, notes = T.save_plots(study, args.plots or T.study_dir(study))
    for path in saved:
        print(f"Saved {path}")
    for note in notes:
        print(f"note: {note}")
    if args.out and T.completed(study):
        print(f"Best hyperparameters written to {T.write_best(study, args.out)}")
    return 0
