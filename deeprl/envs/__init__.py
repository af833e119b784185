"""Course environment ids -> Gymnasium environments (see registry.py)."""

from deeprl.envs.registry import (
    EnvSpec,
    env_tag,
    get_spec,
    list_specs,
    make_env,
    parse_env_kwargs,
    ranked_task,
    register,
    resolve_env,
)

__all__ = [
    "EnvSpec",
    "env_tag",
    "get_spec",
    "list_specs",
    "make_env",
    "parse_env_kwargs",
    "ranked_task",
    "register",
    "resolve_env",
]
