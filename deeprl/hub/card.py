"""The model card (README.md): front matter the Hub and the course leaderboard read, a body a learner reads.

The front matter follows design.md ("Model repository"): `library_name: deeprl`, tags, and a `model-index`
built by `huggingface_hub.metadata_eval_result`, so `huggingface_hub.ModelCard.load(path).data.eval_results`
returns the metric, with the value written "{mean:.2f} +/- {std:.2f}" as the course's leaderboard parses it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

BASE_TAGS = ["reinforcement-learning", "deep-reinforcement-learning", "deep-rl-course"]
PRETTY = {"qlearning": "Q-Learning", "reinforce": "Reinforce", "ppo": "PPO", "a2c": "A2C", "dqn": "DQN"}
_VALUE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\+/-\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


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
    from huggingface_hub import metadata_eval_result

    tag = config.get("env_tag") or results.get("env_tag") or config["env_id"]
    meta = {"library_name": "deeprl", "tags": card_tags_for(config)}
    meta.update(metadata_eval_result(
        model_pretty_name=f"{pretty_algo(config['algo'])} {tag}",
        task_pretty_name="reinforcement-learning", task_id="reinforcement-learning",
        metrics_pretty_name="mean_reward", metrics_id="mean_reward",
        metrics_value=f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}",
        dataset_pretty_name=tag, dataset_id=tag))
    return meta


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
        "print(evaluate(agent)[\"mean_reward\"])",
        "action = agent.act(observation)  # one observation in, one env action out",
        "```",
        "",
        "The weights are in `model.safetensors` and the settings in `config.json`: loading them never runs code.",
        "",
    ]
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n" + "\n".join(lines)


def _text(readme) -> str | None:
    if isinstance(readme, Path) or (isinstance(readme, str) and "\n" not in readme and len(readme) < 4096
                                    and not readme.lstrip().startswith("---")):
        try:
            return Path(readme).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    return readme if isinstance(readme, str) else None


def front_matter(readme) -> dict | None:
    """The YAML front matter of a card (path or text) as a dict; None when absent or malformed."""
    text = _text(readme)
    if not text:
        return None
    m = _FRONT.match(text)
    if not m:
        return None
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def card_tags(readme) -> list[str]:
    meta = front_matter(readme) or {}
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    return [str(t) for t in tags if isinstance(t, (str, int, float))]


def read_claim(readme) -> dict | None:
    """What a card claims: {mean, std, env_tag, value}, from the first mean_reward metric; None if it claims nothing.

    `readme` is a path to README.md or the card's text. A malformed card is None, never an exception.
    """
    meta = front_matter(readme)
    if not meta:
        return None
    try:
        for entry in meta.get("model-index") or []:
            for res in entry.get("results") or []:
                dataset = res.get("dataset") or {}
                for metric in res.get("metrics") or []:
                    if metric.get("type") != "mean_reward" and metric.get("name") != "mean_reward":
                        continue
                    m = _VALUE.match(str(metric.get("value", "")))
                    if not m:
                        continue
                    tag = dataset.get("name") or dataset.get("type")
                    if not tag:
                        continue
                    return {"mean": float(m.group(1)), "std": float(m.group(2)), "env_tag": str(tag),
                            "value": str(metric["value"])}
    except (AttributeError, TypeError):
        return None
    return None
