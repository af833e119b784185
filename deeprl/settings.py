"""Hyperparameters as RL-Zoo writes them, read once: defaults, `-c file.yml`, `--hyperparams k:v`, unknown keys,
types and the `lin_X` schedules.

Each algorithm declares its settings as a dataclass (`Settings`, defaults and `:param` docs, as SB3 documents its
constructors). A run's hyperparameters travel as a plain dict (what `config.json` records, as the user wrote them:
`lin_2.5e-4` stays a string there); `load(Settings, hp)` turns that dict into the typed settings an algorithm
trains with. Nothing else merges, coerces or parses schedules.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, Union

import yaml

from deeprl.errors import UserError, closest

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Keys RL-Zoo files carry that describe things deeprl decides itself (accepted and ignored, said once).
ZOO_KEYS = {
    "policy",
    "env_wrapper",
    "frame_stack",
    "normalize",
    "policy_kwargs",
    "optimize_memory_usage",
    "n_envs",
    "vec_env_class",
    "callback",
}


@dataclass(frozen=True)
class Linear:
    """RL-Zoo's `lin_X`: X at the start of the run, annealed linearly to 0 at its end; `lin_X_Y` ends at Y instead
    (ML-Agents' `DecayedValue`, which stops PPO's epsilon at 0.1 and beta at 1e-5)."""

    start: float
    end: float = 0.0

    def __call__(self, progress_remaining: float) -> float:
        return self.end + (self.start - self.end) * progress_remaining

    def __str__(self) -> str:
        return f"lin_{self.start!r}" + (f"_{self.end!r}" if self.end else "")


Rate = float | Linear  # a constant, or `lin_X` (a field typed Rate accepts both)


def rate_at(rate: Rate, progress_remaining: float) -> float:
    """The value of a Rate with `progress_remaining` (1 at the start, 0 at the end) of the run left."""
    return rate(progress_remaining) if isinstance(rate, Linear) else float(rate)


# --------------------------------------------------------------------------------------------------------------
# Typed settings


T = TypeVar("T", bound="DataclassInstance")


def defaults(cls: type) -> dict:
    """The dataclass's defaults as a plain dict (an algorithm module's DEFAULTS)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif callable(f.default_factory):
            out[f.name] = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} has no default")
    return out


def load(cls: type[T], hp: dict) -> T:
    """`cls` built from a run's hyperparameters: missing keys take their defaults (a run resumed from an older
    version lacks keys added since), every value is converted to its field's type, and a value that cannot be is
    one sentence (exit 2). Keys `cls` does not have (RL-Zoo's, see ZOO_KEYS) are left out."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: convert(k, v, hints[k]) for k, v in hp.items() if k in names})


def convert(name: str, value: Any, tp: Any) -> Any:
    """`value` as type `tp` (int, float, bool, str, Rate, a `X | None`; anything else passes as it is)."""
    if tp is Any:
        return value
    options = typing.get_args(tp) if typing.get_origin(tp) in (Union, types.UnionType) else (tp,)
    if value is None:
        if type(None) in options:
            return None
        raise UserError(f"{name} needs a value; it cannot be empty.")
    if Linear in options and isinstance(value, (str, Linear)):
        return _linear(name, value) if isinstance(value, str) else value
    for option in options:
        if option is type(None):
            continue
        if option is bool:
            if isinstance(value, bool):
                return value
            raise UserError(f"{name} must be true or false, not {value!r}.")
        if option is int:
            number = _number(name, value, "a whole number")
            if not float(number).is_integer():
                raise UserError(f"{name} must be a whole number, not {value!r}.")
            return int(number)
        if option is float:
            return float(_number(name, value, "a number or lin_<number>" if Linear in options else "a number"))
        if option is str:
            if isinstance(value, str):
                return value
            raise UserError(f"{name} must be a word such as {name}: tanh, not {value!r}.")
    return value


def _number(name: str, value: Any, what: str) -> int | float:
    """RL-Zoo files write numbers as strings ('1e-4') and counts as floats (1e6)."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be {what}, not {value!r}.")
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be {what}, not {value!r}.") from None


def _linear(name: str, value: str) -> Linear | float:
    if not value.startswith("lin_"):
        return float(_number(name, value, "a number or lin_<number>"))
    try:
        return Linear(*(float(part) for part in value[4:].split("_", 1)))
    except ValueError:
        raise UserError(
            f"{name} '{value}' is not of the form lin_<number> or lin_<start>_<end>, e.g. lin_2.5e-4 or lin_0.2_0.1."
        ) from None


# --------------------------------------------------------------------------------------------------------------
# Where hyperparameters come from: the algorithm's defaults < hyperparams/<algo>.yml < -c file < --hyperparams


def default_hyperparams(algo_name: str, algo_module: ModuleType, env_id: str, tag: str) -> dict:
    hp = dict(algo_module.DEFAULTS)
    try:
        text = resources.files("deeprl.hyperparams").joinpath(f"{algo_name}.yml").read_text()
    except FileNotFoundError:
        return hp
    table = yaml.safe_load(text) or {}
    for key in (env_id, tag):
        if isinstance(table.get(key), dict):
            hp.update(table[key])
    return hp


def read_hyperparam_file(path: str, env_id: str, tag: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"Hyperparameter file {path} does not exist.")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a YAML mapping of hyperparameters.")
    from deeprl.mlagents import is_trainer_file, read_trainer_config

    if is_trainer_file(data):  # an ML-Agents trainer file (behaviors: ...), mapped onto PPO's settings
        return read_trainer_config(data, env_id, tag, path)
    # RL-Zoo files are keyed by env id; a flat file holds the hyperparameters directly.
    for key in (env_id, tag):
        if isinstance(data.get(key), dict):
            return dict(data[key])
    if all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"{path} has sections for {', '.join(data)} but none for {env_id}.")
    return data


def parse_overrides(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition(":")
        if not sep:
            key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"'{item}' is not of the form key:value (for example learning_rate:0.5).")
        out[key] = yaml.safe_load(raw)
    return out


def coerce(hp: dict, algo_module: ModuleType) -> dict:
    """The dict as a run records it: numbers of typed fields converted (`lin_X` kept as written), values checked.

    An algorithm without a Settings dataclass (one not converted yet) gets the older, looser rule: numbers
    written as strings become numbers where its default is one, whole floats become ints where it is an int."""
    cls = getattr(algo_module, "Settings", None)
    if cls is not None:
        hints = typing.get_type_hints(cls)
        return {k: _recorded(v, convert(k, v, hints[k])) if k in hints else v for k, v in hp.items()}
    out = {}
    for key, value in hp.items():
        default = algo_module.DEFAULTS.get(key)
        if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
            try:
                value = float(value)
            except ValueError:
                pass  # schedules like lin_2.5e-4 are the algorithm's to read
        if (
            isinstance(default, int)
            and not isinstance(default, bool)
            and isinstance(value, float)
            and value.is_integer()
        ):
            value = int(value)
        out[key] = value
    return out


def _recorded(given: Any, value: Any) -> Any:
    return given if isinstance(value, Linear) else value  # a schedule is recorded as written: lin_2.5e-4


def merge_hyperparams(
    algo_name: str,
    algo_module: ModuleType,
    env_id: str,
    tag: str,
    file: str | None,
    overrides: dict,
    n_timesteps: int | None,
) -> dict:
    hp = default_hyperparams(algo_name, algo_module, env_id, tag)
    given = {}
    if file:
        given.update(read_hyperparam_file(file, env_id, tag))
    given.update(overrides)
    if n_timesteps is not None:
        given["n_timesteps"] = n_timesteps
    known = set(algo_module.DEFAULTS)
    unknown = [k for k in given if k not in known and k not in ZOO_KEYS]
    if unknown:
        k = unknown[0]
        hints = closest(k, known)
        hint = f" Did you mean {hints[0]}?" if hints else ""
        raise UserError(f"'{k}' is not a hyperparameter of {algo_name}.{hint} Known: {', '.join(sorted(known))}.")
    ignored = sorted(k for k in given if k not in known)
    if ignored:
        from deeprl.log import note

        note(f"deeprl chooses {', '.join(ignored)} itself for {algo_name}; those keys are ignored.")
    hp.update({k: v for k, v in given.items() if k in known})
    return coerce(hp, algo_module)
