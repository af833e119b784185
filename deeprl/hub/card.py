"""Reading a model card (README.md) from a hub repository: bounded in size, depth and work, never an exception.

The leaderboard's verifier (deeprl/verify.py) and `list_models` read strangers' cards with these functions: the
YAML front matter by a safe loader without aliases and with node and depth budgets, the claim in its
`model-index` ("{mean:.2f} +/- {std:.2f}", the shape the course's leaderboard parses), and the body rendered to
allow-listed HTML. Writing a card is publishing, not storage: deeprl/publish.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_VALUE = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\+/-\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_FRONT = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)

MAX_CARD_BYTES = 256 * 1024  # a generated card is about 3 KB; the course's are under 20 KB
MAX_FRONT_BYTES = 64 * 1024
MAX_YAML_NODES = 5_000
MAX_YAML_DEPTH = 20


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and with a node and depth budget.

    Aliases are what a "billion laughs" card uses: 1.6 KB of `&a [*a, *a, ...]` expands to gigabytes when the
    loader builds the Python objects. A card's front matter never needs them (huggingface_hub writes none), so an
    alias is refused outright; the node and depth budgets bound everything else.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("the card's front matter uses a YAML alias, which cards may not")
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise yaml.YAMLError(f"the card's front matter has more than {MAX_YAML_NODES} YAML nodes")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"the card's front matter is nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_yaml(text: str) -> Any:
    """The YAML document in `text` by the bounded loader; raises yaml.YAMLError (or ValueError) when refused."""
    if len(text) > MAX_FRONT_BYTES:
        raise ValueError(f"the card's front matter is longer than {MAX_FRONT_BYTES // 1024} KB")
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (the loader is a SafeLoader)


def _text(readme: str | Path) -> str | None:
    if isinstance(readme, Path) or (
        isinstance(readme, str) and "\n" not in readme and len(readme) < 4096 and not readme.lstrip().startswith("---")
    ):
        try:
            with open(readme, "rb") as fh:
                return fh.read(MAX_CARD_BYTES).decode("utf-8", errors="replace")
        except OSError:
            return None
    return readme[:MAX_CARD_BYTES] if isinstance(readme, str) else None


def split_card(text: str) -> tuple[dict | None, str]:
    """(front matter or None when absent or refused, body) of a card's text, both bounded."""
    text = text[:MAX_CARD_BYTES]
    m = _FRONT.match(text[: MAX_FRONT_BYTES + 16])
    if not m:
        return None, text
    try:
        data = safe_yaml(m.group(1))
    except (yaml.YAMLError, ValueError, RecursionError):
        data = None
    return (data if isinstance(data, dict) else None), text[m.end() :]


def front_matter(readme: str | Path) -> dict | None:
    """The YAML front matter of a card (path or text) as a dict; None when absent, malformed or over budget."""
    text = _text(readme)
    if not text:
        return None
    return split_card(text)[0]


def card_tags(readme: str | Path) -> list[str]:
    meta = front_matter(readme) or {}
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    return [str(t)[:100] for t in tags if isinstance(t, (str, int, float))][:100] if isinstance(tags, list) else []


def claim_from_meta(meta: dict | None) -> dict | None:
    """What a card's front matter claims: {mean, std, env_tag, value} from its first mean_reward metric."""
    if not meta:
        return None
    try:
        for entry in meta.get("model-index") or []:
            for res in entry.get("results") or []:
                dataset = res.get("dataset") or {}
                for metric in res.get("metrics") or []:
                    if metric.get("type") != "mean_reward" and metric.get("name") != "mean_reward":
                        continue
                    m = _VALUE.match(str(metric.get("value", ""))[:200])
                    if not m:
                        continue
                    tag = dataset.get("name") or dataset.get("type")
                    if not tag:
                        continue
                    return {
                        "mean": float(m.group(1)),
                        "std": float(m.group(2)),
                        "env_tag": str(tag)[:100],
                        "value": str(metric["value"])[:200],
                    }
    except (AttributeError, TypeError):
        return None
    return None


def read_claim(readme: str | Path) -> dict | None:
    """What a card claims: {mean, std, env_tag, value}, from the first mean_reward metric; None if it claims nothing.

    `readme` is a path to README.md or the card's text. A malformed card is None, never an exception.
    """
    return claim_from_meta(front_matter(readme))


CARD_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
CARD_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
    "code": {"class"},
}


def render_card(text: str) -> tuple[str, dict]:
    """(safe HTML of the card body, front matter) from a card's text, in time linear in its length.

    markdown-it-py is a CommonMark parser built to be linear on hostile input (a run of 16k '[' took Python-Markdown
    29 s); raw HTML in the card is not passed through but shown as text (`html: False`), and nh3 then keeps only
    an allow-list of tags and attributes and http(s)/mailto links. Images keep only same-site and data: sources
    in effect: the pages' Content-Security-Policy blocks any other host, so a card cannot plant a tracking pixel.
    """
    import nh3
    from markdown_it import MarkdownIt

    meta, body = split_card(text)
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    html = md.render(body)
    clean = nh3.clean(
        html,
        tags=CARD_TAGS,
        attributes=CARD_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
    return clean, _bounded_json(meta or {})


def _bounded_json(value: Any, depth: int = 0, budget: list | None = None) -> Any:
    """A JSON-safe copy of parsed YAML (dates become strings) with the same depth and node bounds."""
    budget = budget if budget is not None else [MAX_YAML_NODES]
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_YAML_DEPTH:
        return None
    if isinstance(value, dict):
        return {str(k)[:200]: _bounded_json(v, depth + 1, budget) for k, v in list(value.items())[:500]}
    if isinstance(value, (list, tuple)):
        return [_bounded_json(v, depth + 1, budget) for v in value[:500]]
    if isinstance(value, (bool, int, float)) or value is None:
        return value if not isinstance(value, float) or value == value and abs(value) != float("inf") else None
    return str(value)[:2000]
