import argparse
from pathlib import Path

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="evaluate, record, write the model card and push a run to a hub")
    p.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="run folder (logs/<algo>/<env>_N), model folder, course .pkl, or SB3 .zip (pushed as it is, as the "
        "course's package_to_hub does)",
    )
    p.add_argument("--repo-id", required=True, help="NAMESPACE/NAME, for example alice/q-Taxi-v3")
    p.add_argument(
        "--hub",
        choices=["local", "hf"],
        default=None,
        help="local (default: DEEPRL_HOME/hub, git-versioned) or hf (Hugging Face Hub, HF_ENDPOINT)",
    )
    p.add_argument("--commit-message", default=None)
    p.add_argument("--no-video", action="store_true", help="skip replay.mp4")
    p.add_argument("--n-eval-episodes", type=int, default=None, help="default: the env's protocol (10 or 100)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--env", default=None, help="the env an SB3 .zip plays, where its name does not say")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------------------------------------
# Pushing an SB3 zip: the repo the course's `package_to_hub` writes (the zip as it is, the card, results, replay),
# so that SB3 users load it with `load_from_hub` and the leaderboard and certification read it as any other.
# (deeprl.publish is where a deeprl model's repo is written; this is its SB3 counterpart.)

SB3_TAGS = ["deep-reinforcement-learning", "reinforcement-learning", "stable-baselines3", "deep-rl-course"]
ALGO_NAMES = {"ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}


def repo_card(repo_id: str, zip_name: str, algo: str, results: dict, has_video: bool, hub: str = "local") -> str:
    """huggingface_sb3's model card: `library_name: stable-baselines3`, the env tag first among the tags, and the
    model-index result (`metadata_eval_result`) the course's leaderboard parses."""
    import yaml

    from deeprl.publish import eval_result

    tag, pretty = results["env_tag"], ALGO_NAMES.get(algo, algo)
    meta = {"library_name": "stable-baselines3", "tags": [tag, *SB3_TAGS]}
    meta.update(eval_result(pretty, tag, results))
    flag = " --hub hf" if hub == "hf" else ""
    lines = [
        f"# **{pretty}** Agent playing **{tag}**",
        "",
        f"This is a trained model of a **{pretty}** agent playing **{tag}** using the "
        "[stable-baselines3 library](https://github.com/DLR-RM/stable-baselines3).",
        "",
        f"mean_reward {results['mean_reward']:.2f} +/- {results['std_reward']:.2f} over "
        f"{results['n_eval_episodes']} episodes (the course protocol, seed {results.get('seed', 0)}; `results.json`).",
        "",
        *(["`replay.mp4` shows the agent playing one episode.", ""] if has_video else []),
        "## Usage (with Stable-baselines3)",
        "",
        "```python",
        "from huggingface_sb3 import load_from_hub",
        f"from stable_baselines3 import {pretty}",
        "",
        f'checkpoint = load_from_hub("{repo_id}", "{zip_name}")',
        f"model = {pretty}.load(checkpoint)",
        "```",
        "",
        "## Usage (with deeprl, which reads the zip without unpickling anything)",
        "",
        "```bash",
        f"deeprl evaluate {repo_id}{flag}",
        f"deeprl enjoy {repo_id}{flag}",
        "```",
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(lines)


def stage_repo(
    path: str | Path,
    repo_id: str,
    staging: Path,
    *,
    env: str | None = None,
    record_video: bool = True,
    n_eval_episodes: int | None = None,
    seed: int = 0,
    hub: str = "local",
) -> dict:
    """Write an SB3 zip's repo into `staging` (the zip unchanged, vec_normalize.pkl, results.json, README.md,
    replay.mp4); returns the evaluation results. The zip is read (and so checked) before anything is written."""
    import shutil

    from deeprl.evaluation import evaluate
    from deeprl.modelio import atomic_write_json
    from deeprl.publish import record_replay
    from deeprl.sb3 import VEC_NORMALIZE, find_vec_normalize, load_sb3_agent

    path = Path(path)
    agent = load_sb3_agent(path, env)
    results = evaluate(agent, n_eval_episodes=n_eval_episodes, seed=seed)
    has_video = record_video and record_replay(agent, staging, seed)
    shutil.copy2(path, staging / path.name)
    stats = find_vec_normalize(path)
    if stats is not None:
        shutil.copy2(stats, staging / VEC_NORMALIZE)
    atomic_write_json(staging / "results.json", results)
    card = repo_card(repo_id, path.name, agent.config["algo"], results, has_video, hub)
    (staging / "README.md").write_text(card, encoding="utf-8")
    return results


def push_sb3(
    path: Path,
    repo_id: str,
    *,
    hub: str | None,
    commit_message: str | None,
    record_video: bool,
    n_eval_episodes: int | None,
    seed: int,
    env: str | None,
) -> dict:
    """An SB3 .zip pushed as an SB3-format repo (stage_repo), in one commit, the way push_model pushes
    a run: the learner's classmates load it with SB3's `load_from_hub`, deeprl's leaderboard reads it unpickled."""
    import tempfile

    from deeprl.hub import check_hub, get_hub, validate_repo_id
    from deeprl.publish import push_message

    validate_repo_id(repo_id)
    hub_name = check_hub(hub)
    backend = get_hub(hub_name)
    backend.check_ready()  # "log in first" before the evaluation, not after
    with tempfile.TemporaryDirectory(prefix="deeprl-push-") as tmp:
        staging = Path(tmp)
        results = stage_repo(
            path,
            repo_id,
            staging,
            env=env,
            record_video=record_video,
            n_eval_episodes=n_eval_episodes,
            seed=seed,
            hub=hub_name,
        )
        message = commit_message or push_message(results)
        revision = backend.push(staging, repo_id, message)
    return {
        "repo_id": repo_id,
        "revision": revision,
        "location": backend.location(repo_id),
        "hub": hub_name,
        "results": results,
        "format": "stable-baselines3",
    }


def run(args: argparse.Namespace) -> int:
    from deeprl.commands import format_result, print_json
    from deeprl.errors import UserError
    from deeprl.publish import push_model

    if args.n_eval_episodes is not None and args.n_eval_episodes < 1:
        raise UserError("--n-eval-episodes must be at least 1.")
    options = {
        "hub": args.hub,
        "commit_message": args.commit_message,
        "record_video": not args.no_video,
        "n_eval_episodes": args.n_eval_episodes,
        "seed": args.seed,
    }
    if Path(args.run_dir).suffix == ".zip" and Path(args.run_dir).is_file():
        out = push_sb3(Path(args.run_dir), args.repo_id, env=args.env, **options)
    elif args.env is not None:
        raise UserError("--env is for an SB3 .zip only: a deeprl model records its env.")
    else:
        out = push_model(args.run_dir, args.repo_id, **options)
    if args.json:
        print_json(out)
        return 0
    print(format_result(out["results"]))
    print(f"Pushed {out['repo_id']} to {out['location']} (revision {out['revision']}).")
    print(f"Load it with: deeprl load {out['repo_id']}{' --hub hf' if out['hub'] == 'hf' else ''}")
    return 0
