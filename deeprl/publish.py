"""Publishing: a run folder -> a model repository on a hub (design.md "Model repository").

`push_model` evaluates the model by the course protocol, records a replay, writes config.json, results.json and
the model card (README.md, written here; deeprl/hub/card.py reads cards), and hands the folder to a hub backend
(deeprl/hub) in one commit. This sits above the hub, which only stores: the hub never imports it.

Everything is written into a private staging folder first and handed to the hub in one commit, so a push that
fails before the commit changes nothing in the hub. A replay that cannot be recorded is a warning, not a
lost push.

The card's front matter follows design.md: `library_name: deeprl`, tags, and a `model-index` built by
`huggingface_hub.metadata_eval_result`, so `huggingface_hub.ModelCard.load(path).data.eval_results` returns the
metric, with the value written "{mean:.2f} +/- {std:.2f}" as the course's leaderboard parses it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from deeprl.hub import check_hub, get_hub, validate_repo_id
from deeprl.log import warn
from deeprl.modelio import CONFIG_FILE, MODEL_FILE, atomic_write_json, read_config

LOG_DIRS = ("logs", "tb")  # TensorBoard logs of the run, pushed as logs/


def stage(
    model_dir: Path,
    repo_id: str,
    staging: Path,
    *,
    record_video: bool = True,
    n_eval_episodes: int | None = None,
    seed: int = 0,
    timings: dict | None = None,
    hub: str = "local",
) -> dict:
    """Write the repository's files into `staging`; returns the evaluation results."""
    from deeprl.agent import Agent, load_agent, model_dir as find_model_dir
    from deeprl.evaluation import evaluate

    timings = timings if timings is not None else {}
    path = Path(model_dir)
    if path.suffix == ".pkl" and path.is_file():
        # a course notebook's q-learning.pkl (read by the restricted unpickler) is pushed as safetensors + JSON
        from deeprl.coursefiles import load_course_pickle
        from deeprl.modelio import tensors_to_bytes
        from deeprl.version import __version__

        src, course_agent = None, load_course_pickle(path)
        agent: Agent = course_agent
        config = {**agent.config, "deeprl_version": __version__}
        model_bytes = tensors_to_bytes({"qtable": course_agent.qtable})
    else:
        src = find_model_dir(model_dir)  # a run folder, a model folder, or a logs/ parent (newest run)
        agent = load_agent(src)  # validates config, weights, shapes and NaNs before anything is written
        config, model_bytes = read_config(src), None

    t = time.perf_counter()
    results = evaluate(agent, n_eval_episodes=n_eval_episodes, seed=seed)
    timings["evaluate_s"] = time.perf_counter() - t

    t = time.perf_counter()
    has_video = record_video and record_replay(agent, staging, seed)
    timings["video_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if model_bytes is not None:
        (staging / MODEL_FILE).write_bytes(model_bytes)
    else:
        assert src is not None  # weights are read into model_bytes only from a course file, which has no folder
        shutil.copy2(src / MODEL_FILE, staging / MODEL_FILE)
    config = {k: v for k, v in config.items() if k != "status"}
    config.setdefault("env_tag", results["env_tag"])
    atomic_write_json(staging / CONFIG_FILE, config)
    atomic_write_json(staging / "results.json", results)
    (staging / "README.md").write_text(make_card(repo_id, config, results, has_video, hub=hub), encoding="utf-8")
    for logs in [src / name for name in LOG_DIRS] if src is not None else []:
        if logs.is_dir() and any(logs.iterdir()):
            shutil.copytree(logs, staging / "logs", dirs_exist_ok=True)
    timings["card_s"] = time.perf_counter() - t
    return results


def push_model(
    model_dir: str | Path,
    repo_id: str,
    hub: str | None = "local",
    commit_message: str | None = None,
    record_video: bool = True,
    n_eval_episodes: int | None = None,
    seed: int = 0,
    timings: dict | None = None,
) -> dict:
    """Evaluate, record, write the card and commit a model folder to a hub; {repo_id, revision, location, hub,
    results}."""
    validate_repo_id(repo_id)
    hub_name = check_hub(hub)
    backend = get_hub(hub_name)
    backend.check_ready()  # say "log in first" before minutes of evaluation, not after
    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deeprl-push-") as tmp:
        staging = Path(tmp) / "repo"
        staging.mkdir()
        results = stage(
            Path(model_dir),
            repo_id,
            staging,
            record_video=record_video,
            n_eval_episodes=n_eval_episodes,
            seed=seed,
            timings=timings,
            hub=hub_name,
        )
        message = commit_message or push_message(results)
        t = time.perf_counter()
        revision = backend.push(staging, repo_id, message)
        timings["commit_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    return {
        "repo_id": repo_id,
        "revision": revision,
        "location": backend.location(repo_id),
        "hub": hub_name,
        "results": results,
    }


# ---------------------------------------------------------------------------------------------------------
# The model card: front matter the Hub and the course leaderboard read, a body a learner reads

BASE_TAGS = ["reinforcement-learning", "deep-reinforcement-learning", "deep-rl-course"]
PRETTY = {"qlearning": "Q-Learning", "reinforce": "Reinforce", "ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}


def pretty_algo(algo: str) -> str:
    try:
        from deeprl.algos import get_algo

        return getattr(get_algo(algo), "DISPLAY_NAME", None) or PRETTY.get(algo, algo)
    except Exception:  # a card can still be written for an algorithm this install lacks
        return PRETTY.get(algo, algo)


def card_tags_for(config: dict) -> list[str]:
    from deeprl.algos import get_algo
    from deeprl.envs import env_tag

    tag = config.get("env_tag") or env_tag(config["env_id"], config.get("env_kwargs"))
    algo_tags = list(getattr(get_algo(config["algo"]), "TAGS", []))
    tags = [tag, config["algo"], *algo_tags, *BASE_TAGS]
    return list(dict.fromkeys(tags))  # order kept, duplicates dropped


def metadata(repo_id: str, config: dict, results: dict) -> dict:
    tag = config.get("env_tag") or results.get("env_tag") or config["env_id"]
    meta = {"library_name": "deeprl", "tags": card_tags_for(config)}
    meta.update(eval_result(f"{pretty_algo(config['algo'])} {tag}", tag, results))
    return meta


def eval_result(model_name: str, tag: str, results: dict) -> dict:
    """The card's model-index entry, as the course's package_to_hub writes it (the course's leaderboard parses
    its `mean_reward` "MEAN +/- STD")."""
    from huggingface_hub import metadata_eval_result

    return metadata_eval_result(
        model_pretty_name=model_name,
        task_pretty_name="reinforcement-learning",
        task_id="reinforcement-learning",
        metrics_pretty_name="mean_reward",
        metrics_id="mean_reward",
        metrics_value=f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}",
        dataset_pretty_name=tag,
        dataset_id=tag,
    )


def _table(d: dict) -> str:
    rows = ["| name | value |", "|---|---|"]
    for k, v in d.items():
        rows.append(f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |")
    return "\n".join(rows)


def make_card(repo_id: str, config: dict, results: dict, has_video: bool, hub: str = "local") -> str:
    meta = metadata(repo_id, config, results)
    tag = meta["tags"][0]
    algo = pretty_algo(config["algo"])
    kwargs = config.get("env_kwargs") or {}
    kw_text = f" with `{json.dumps(kwargs)}`" if kwargs else ""
    det = "deterministic" if results.get("is_deterministic", True) else "sampled"
    trained = config.get("trained") or {}
    trained_text = ", ".join(f"{k}={v}" for k, v in trained.items())
    lines = [
        f"# **{algo}** agent playing **{tag}**",
        "",
        f"This is a trained model of a **{algo}** agent playing **{config['env_id']}**{kw_text}, "
        "trained with [deeprl](https://huggingface.co/learn/deep-rl-course), the Deep RL Course's system.",
        "",
        "## Results",
        "",
        "| env | mean_reward | std_reward | result (mean - std) | episodes | actions |",
        "|---|---|---|---|---|---|",
        f"| {tag} | {results['mean_reward']:.2f} | {results['std_reward']:.2f} | {results['result']:.2f} | "
        f"{results['n_eval_episodes']} | {det} |",
        "",
        f"Evaluated by the course protocol (seed {results.get('seed', 0)}, "
        f"on {results.get('eval_datetime', 'unknown date')}); every figure is in `results.json`.",
        "",
    ]
    if has_video:
        lines += ["## Replay", "", "`replay.mp4` (H.264) shows the agent playing one episode.", ""]
    lines += ["## Hyperparameters", "", _table(config.get("hyperparams") or {}), ""]
    if trained_text:
        lines += [f"Training: seed {config.get('seed', 0)}, {trained_text}.", ""]
    flag = " --hub hf" if hub == "hf" else ""
    hub_arg = ', hub="hf"' if hub == "hf" else ""
    lines += [
        "## Usage",
        "",
        "With `deeprl` installed:",
        "",
        "```bash",
        f"deeprl load {repo_id}{flag} -f models/{repo_id}   # download the files",
        f"deeprl evaluate {repo_id}{flag}   # the course protocol: the figures above",
        f"deeprl enjoy {repo_id}{flag}      # watch it play",
        "```",
        "",
        "```python",
        "from deeprl.agent import load_agent",
        "from deeprl.evaluation import evaluate",
        "",
        f'agent = load_agent("{repo_id}"{hub_arg})',
        'print(evaluate(agent)["mean_reward"])',
        "action = agent.act(observation)  # one observation in, one env action out",
        "```",
        "",
        "The weights are in `model.safetensors` and the settings in `config.json`: loading them never runs code.",
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(lines)


def record_replay(agent: Any, staging: Path, seed: int) -> bool:
    """replay.mp4 of one episode in the staging folder; False, with a warning, where it cannot be made (an env
    without rgb_array rendering, ffmpeg missing): the model, card and results are pushed without it."""
    from deeprl.video import record

    try:
        record(agent, staging / "replay.mp4", n_episodes=1, seed=seed)
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        warn(f"no replay video for this push ({exc}); the model, card and results are pushed without it.")
        return False


def push_message(results: dict) -> str:
    """The commit message of a push without --commit-message."""
    return f"Push {results['env_tag']} agent: mean_reward {results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
