"""`deeprl mlagents-learn` and `deeprl mlagents-push-to-hf`: Unit 5's two ML-Agents commands, typed as the course
types them, with deeprl's native Pyramids and SnowballTarget in place of the Unity executables.

    deeprl mlagents-learn ./config/ppo/PyramidsRND.yaml --env=./training-envs-executables/linux/Pyramids/Pyramids \
        --run-id="Pyramids Training" --no-graphics
    deeprl mlagents-push-to-hf --run-id="Pyramids Training" --local-dir="./results/Pyramids Training" \
        --repo-id="alice/ppo-Pyramids" --commit-message="First Push"

The trainer file goes through deeprl.mlagents (every key checked, mapped onto deeprl's PPO). `--env` may be the
course's executable path: its last part names the env. The run lands in RESULTS_DIR/ppo/RUN_ID (`results` by
default; ML-Agents writes RESULTS_DIR/RUN_ID, and deeprl keeps its algorithm level, as `deeprl train --run-id` does),
which `deeprl enjoy`, `evaluate` and `push` take as a run folder; `mlagents-push-to-hf` finds it from either.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from deeprl.commands import seed

UNIT5_ENVS = ("Pyramids", "SnowballTarget", "Huggy")  # Huggy: Bonus Unit 1, trained the same way


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mlagents-learn", help="Unit 5: train from an ML-Agents trainer file, as mlagents-learn does")
    p.add_argument("trainer_config", metavar="TRAINER_CONFIG", help="the course's YAML, e.g. PyramidsRND.yaml")
    p.add_argument(
        "--env",
        default=None,
        help="Pyramids, SnowballTarget or Huggy, or the course's executable path ending in one of them "
        "(default: the file's behavior name)",
    )
    p.add_argument("--run-id", default="ppo", help="the run's folder name under --results-dir (default: ppo)")
    p.add_argument("--results-dir", default="results", help="where runs go (default: results)")
    p.add_argument("--seed", type=seed, default=0, help="default 0 (ML-Agents draws one; deeprl runs reproduce)")
    p.add_argument("--resume", action="store_true", help="continue the run --run-id names")
    p.add_argument("--force", action="store_true", help="replace the run --run-id names")
    p.add_argument("--torch-device", dest="device", default="auto", help="auto, cpu or cuda")
    for flag in ("--no-graphics",):  # Unity's window: deeprl's envs have none while training
        p.add_argument(flag, action="store_true", help="accepted; deeprl trains without a window anyway")
    p.set_defaults(func=learn)

    q = sub.add_parser("mlagents-push-to-hf", help="Unit 5: push an mlagents-learn run, as the course's command does")
    q.add_argument("--run-id", required=True, help="the run's --run-id")
    q.add_argument("--local-dir", required=True, help="the run's folder, e.g. ./results/RUN_ID")
    q.add_argument("--repo-id", required=True, help="NAMESPACE/NAME, e.g. alice/ppo-Pyramids")
    q.add_argument("--commit-message", default=None)
    q.add_argument("--hub", choices=["local", "hf"], default=None, help="local (default) or hf")
    q.set_defaults(func=push_to_hf)


def env_from(env: str | None, trainer_config: str) -> str:
    """The course env an --env value (an id or the course's executable path) or, without one, the trainer file's
    one behavior names; one sentence when neither is a Unit 5 env."""
    from deeprl.errors import UserError

    if env is not None:
        name = re.sub(r"\.(x86_64|x86|exe|app)$", "", Path(env.rstrip("/\\")).name, flags=re.IGNORECASE)
        for known in UNIT5_ENVS:
            if name.lower() == known.lower():
                return known
        raise UserError(f"--env {env!r} is not a Unit 5 environment or Huggy; deeprl has {', '.join(UNIT5_ENVS)}.")
    import yaml

    try:
        data = yaml.safe_load(Path(trainer_config).read_text())
    except yaml.YAMLError:
        data = None  # training reads it again and says what is wrong
    behaviors = data.get("behaviors") if isinstance(data, dict) else None
    names = [n for n in behaviors if n in UNIT5_ENVS] if isinstance(behaviors, dict) else []
    if len(names) != 1:
        raise UserError(f"Give --env ({' or '.join(UNIT5_ENVS)}): {trainer_config} does not name one of them.")
    return names[0]


def learn(args: argparse.Namespace) -> int:
    import shutil
    import sys

    from deeprl.errors import UserError
    from deeprl.train import check_run_id, interrupted_message, train

    check_run_id(args.run_id)
    if not Path(args.trainer_config).is_file():
        raise UserError(f"No trainer file at {args.trainer_config}.")
    env_id = env_from(args.env, args.trainer_config)
    run_dir = Path(args.results_dir) / "ppo" / args.run_id
    if run_dir.exists() and not args.resume:
        if not args.force:
            raise UserError(f"{run_dir} already holds a run; add --resume to continue it or --force to replace it.")
        shutil.rmtree(run_dir)
    budget = None
    if args.resume:  # ML-Agents resumes to the file's max_steps, which may have grown since
        from deeprl.settings import read_hyperparam_file

        budget = read_hyperparam_file(args.trainer_config, env_id, f"ML-Agents-{env_id}").get("n_timesteps")
    try:
        run = train(
            "ppo",
            env_id,
            hyperparams_file=args.trainer_config,
            seed=args.seed,
            log_folder=args.results_dir,
            resume=args.resume,
            n_timesteps=budget,
            device=args.device,
            run_id=args.run_id,
        )
    except KeyboardInterrupt:
        print(f"deeprl: {interrupted_message(args.results_dir)}", file=sys.stderr)
        return 130
    print(f"Saved {env_id} model in {run.run_dir}")
    print(
        f"Watch it: deeprl enjoy '{run.run_dir}'; push it: deeprl mlagents-push-to-hf --run-id='{args.run_id}' "
        f"--local-dir='{run.run_dir}' --repo-id=USER/ppo-{env_id}"
    )
    return 0


def push_to_hf(args: argparse.Namespace) -> int:
    from deeprl.commands import format_result
    from deeprl.errors import UserError
    from deeprl.publish import push_model
    from deeprl.train import check_run_id

    check_run_id(args.run_id)
    given = Path(args.local_dir)
    # the run folder itself, or ML-Agents' RESULTS_DIR/RUN_ID for deeprl's RESULTS_DIR/ppo/RUN_ID, or RESULTS_DIR
    places = [given, given.parent / "ppo" / given.name, given / "ppo" / args.run_id, given / args.run_id]
    local = next((p for p in places if (p / "config.json").is_file()), given)
    if not (local / "config.json").is_file():
        raise UserError(f"No mlagents-learn run in {args.local_dir}; give the run's folder, e.g. ./results/RUN_ID.")
    out = push_model(str(local), args.repo_id, hub=args.hub, commit_message=args.commit_message)
    print(format_result(out["results"]))
    print(f"Pushed {out['repo_id']} to {out['location']} (revision {out['revision']}).")
    return 0
