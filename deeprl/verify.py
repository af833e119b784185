"""The leaderboard's verifier: the child process that reads one pushed revision and re-evaluates it.

Everything here treats the model folder as hostile. The indexer (deeprl.leaderboard) runs this module with a
scrubbed environment, its own temporary folder, a read-only copy of the model, and CPU, memory and wall-clock
limits, so whatever a repo makes it do costs that repo's row and nothing else. It prints two JSON lines:

1. the card: its sanitized HTML, its bounded front matter and claim (parsed once per revision, here, so no web
   request ever parses a stranger's Markdown or YAML);
2. the verdict: `{"status": "ok", ...figures}`, `{"status": "custom", "error": why}` for a model that plays a
   task other than its tag's, or `{"status": "error", "error": why}`.

The task is the tag's, built from the tag alone with the course's settings (deeprl.envs.ranked_task): a config
that asks for a longer time limit or other physics is reported as a custom task, not evaluated on its own terms.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MAX_CONFIG_BYTES = 1 << 20
MAX_JSON_DEPTH = 32


def json_depth(text: str) -> int:
    """The deepest nesting of [ and { in a JSON text (outside strings), in one pass and without recursion."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_json_bounded(path: Path, what: str = "config.json") -> dict:
    """A JSON object from a file of at most 1 MiB and 32 levels; ValueError with one sentence otherwise."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{what} is missing") from None
    except OSError as exc:
        raise ValueError(f"{what} cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"{what} is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    text = raw.decode("utf-8", errors="replace")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} does not hold a JSON object")
    return value


def read_card(folder: Path) -> dict:
    """{'card_html', 'card_meta', 'claim'} of the folder's README.md; empty values when there is none."""
    from deeprl.hub.card import MAX_CARD_BYTES, claim_from_meta, render_card

    path = folder / "README.md"
    if not path.is_file():
        return {"card_html": None, "card_meta": {}, "claim": None}
    with open(path, "rb") as fh:
        text = fh.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
    html, meta = render_card(text)
    return {"card_html": html, "card_meta": meta, "claim": claim_from_meta(meta)}


def verdict(folder: Path, seed: int = 0) -> dict:
    """Evaluate the model in `folder` on the task its tag names; never raises for a bad model."""
    from deeprl.envs import ranked_task, resolve_env
    from deeprl.errors import UserError

    try:
        config = read_json_bounded(folder / "config.json")
    except ValueError as exc:
        return {"status": "error", "error": f"{exc}; the model cannot be read"}
    algo = config.get("algo") if isinstance(config.get("algo"), str) else None
    out = {"algo": algo[:50] if algo else None}
    env_tag = config.get("env_tag") if isinstance(config.get("env_tag"), str) else None
    tag, why = ranked_task(config.get("env_id"), config.get("env_kwargs"), env_tag)
    if why:
        return {**out, "status": "custom", "env": tag or (env_tag or "")[:100] or None, "error": why}
    assert tag is not None  # ranked_task names the task whenever it has no objection
    out["env"] = tag
    try:
        from deeprl.agent import load_agent
        from deeprl.evaluation import evaluate

        spec, task_kwargs = resolve_env(tag)  # the task from the tag alone, never from the model's settings
        agent = load_agent(folder)
        result = evaluate(agent, env_id=spec.course_id, env_kwargs=task_kwargs, seed=seed)
    except UserError as exc:
        return {**out, "status": "error", "error": str(exc).replace(str(folder), "the model folder")[:1000]}
    except MemoryError:
        return {**out, "status": "error", "error": "the evaluation ran out of memory"}
    except RecursionError:
        return {**out, "status": "error", "error": "the model is nested too deeply to load"}
    return {
        **out,
        "status": "ok",
        **{
            k: result[k]
            for k in ("mean_reward", "std_reward", "result", "n_eval_episodes", "is_deterministic", "env_tag")
        },
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m deeprl.verify MODEL_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    card_line(folder)
    print(json.dumps({"verdict": verdict(folder)}), flush=True)
    return 0


def card_line(folder: Path) -> dict:
    """The child's first line, the model's card; a card we cannot read leaves the page without a card, never the
    row without figures."""
    try:
        card = read_card(folder)
    except Exception as exc:
        card = {"card_html": None, "card_meta": {}, "claim": None, "card_error": exc.__class__.__name__}
    print(json.dumps({"card": card}), flush=True)
    return card


if __name__ == "__main__":
    sys.exit(main())
