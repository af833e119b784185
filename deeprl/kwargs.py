"""RL-Zoo's call-shaped settings (`policy_kwargs: "dict(net_arch=[64], activation_fn=nn.ReLU)"`, `normalize:
"dict(norm_obs=True)"`) read as literals, never evaluated.

It sits below both policies.py and normalize.py, which each read such a string, so neither imports the other for it.
"""

from __future__ import annotations

import ast
from typing import Any

from deeprl.errors import UserError


def parse_call_kwargs(text: str, what: str) -> dict:
    """`dict(a=1, b=nn.ReLU, c=dict(pi=[64]))` -> {'a': 1, 'b': 'relu', 'c': {'pi': [64]}}; literals only."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise UserError(f"{what} '{text}' is not of the form dict(key=value, ...).") from None
    return _literal(node, what, text)


def _literal(node: ast.expr | None, what: str, text: str) -> Any:
    if node is None:  # the `**x` of a dict display: not a literal
        raise _not_literal(what, text)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value, what, text) for kw in node.keywords}
    if isinstance(node, ast.Attribute):  # nn.ReLU, th.nn.Tanh -> the activation's name
        return node.attr.lower()
    if isinstance(node, ast.Dict):
        return {_literal(k, what, text): _literal(v, what, text) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, what, text) for e in node.elts]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _not_literal(what, text) from None


def _not_literal(what: str, text: str) -> UserError:
    return UserError(f"{what} '{text}' may hold only numbers, strings, lists, dict(...) and nn.<Activation>.")
