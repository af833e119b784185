import argparse

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an agent (RL-Zoo style)")
    p.add_argument(
        "--algo", default=None, help="qlearning, reinforce, ppo, a2c, dqn, ... (an ML-Agents trainer file says ppo)"
    )
    p.add_argument("--env", required=True, help="course env id, e.g. Taxi-v3 (see 'deeprl envs')")
    p.add_argument("--env-kwargs", nargs="*", metavar="K:V", help="env options, e.g. map_name:4x4 is_slippery:False")
    p.add_argument("-c", "--conf-file", dest="conf", help="hyperparameter YAML (RL-Zoo format accepted)")
    p.add_argument("--hyperparams", nargs="*", metavar="K:V", help="override single hyperparameters")
    p.add_argument("-f", "--log-folder", default="logs", help="where run folders go (default: logs)")
    p.add_argument(
        "--run-id",
        default=None,
        help="name of the run folder (ML-Agents' --run-id): LOG_FOLDER/ALGO/RUN_ID instead of ENV_N",
    )
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="training budget in env steps")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue the newest run of this algo and env")
    p.add_argument("--save-replay-buffer", action="store_true", help="(DQN) keep the replay buffer in checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from deeprl.envs import parse_env_kwargs
    from deeprl.errors import UserError
    from deeprl.settings import parse_overrides
    from deeprl.train import interrupted_message, train

    algo = args.algo or trainer_file_algo(args.conf)
    if algo is None:
        raise UserError("The following arguments are required: --algo (see 'deeprl train --help').")
    overrides = parse_overrides(args.hyperparams)
    if args.save_replay_buffer:
        overrides["save_replay_buffer"] = True
    try:
        run = train(
            algo,
            args.env,
            env_kwargs=parse_env_kwargs(args.env_kwargs),
            hyperparams_file=args.conf,
            overrides=overrides,
            seed=args.seed,
            log_folder=args.log_folder,
            n_timesteps=args.n_timesteps,
            resume=args.resume,
            device=args.device,
            show_progress=not args.quiet,
            run_id=args.run_id,
        )
    except KeyboardInterrupt:
        print(f"deeprl: {interrupted_message(args.log_folder)}", file=sys.stderr)
        return 130
    except MemoryError:
        raise UserError("Out of memory while training; lower buffer_size or n_envs.") from None
    print(f"Saved {run.algo} model for {run.env_tag} in {run.run_dir}")
    return 0


def trainer_file_algo(conf: str | None) -> str | None:
    """'ppo' for an ML-Agents trainer file (`behaviors:`; every behavior's trainer_type is checked when it is read),
    as `mlagents-learn config.yaml` needs no algorithm; None otherwise."""
    from pathlib import Path

    import yaml

    if conf is None or not Path(conf).is_file():
        return None
    try:
        data = yaml.safe_load(Path(conf).read_text())
    except yaml.YAMLError:
        return None  # training reads it again and says what is wrong
    from deeprl.mlagents import is_trainer_file

    return "ppo" if is_trainer_file(data) else None
