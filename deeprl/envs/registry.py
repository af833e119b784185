"""The environment ids the course uses, mapped onto what today's libraries ship.

Each entry knows its course unit, the tag its model cards carry (so leaderboards line up with the course's),
how the course evaluates it, and how to build it. Families that need extra packages (Atari, Panda, ViZDoom)
import them only when built, and say which package is missing in one sentence.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from deeprl.errors import UserError, closest
from deeprl.log import note

MakeFn = Callable[[dict, "str | None", bool], Any]  # (env_kwargs, render_mode, training) -> gym.Env


@dataclass(frozen=True)
class EnvSpec:
    course_id: str  # what the user types (the course's id)
    unit: str  # course unit that uses it ("2", "8.1", "-" when not an assignment env)
    make: MakeFn
    gym_id: str | None = None  # what it really builds, when that differs from course_id
    description: str = ""
    default_kwargs: dict = field(default_factory=dict)
    tag: Callable[[dict], str] | None = None  # card tag from the effective kwargs; default: course_id
    n_eval_episodes: int = 10
    eval_max_steps: int | None = None  # a cap on top of the env's own time limit (Taxi, FrozenLake: 99)
    eval_seeds: tuple[int, ...] | None = None  # fixed per-episode seeds (Taxi)
    deterministic: bool = True  # argmax / mean actions at evaluation (Atari: sampled)
    requires: str | None = None  # pip extra or package that must import for this env
    # the kwargs that name a ranked task, each with the values its tag can name (FrozenLake: map and slipperiness);
    # a model trained with any other kwarg, or another value, plays a custom task that is never ranked
    task_kwargs: dict = field(default_factory=dict)

    def card_tag(self, kwargs: dict | None = None) -> str:
        merged = {**self.default_kwargs, **(kwargs or {})}
        return self.tag(merged) if self.tag else self.course_id


_REGISTRY: dict[str, EnvSpec] = {}


def register(spec: EnvSpec) -> EnvSpec:
    _REGISTRY[spec.course_id] = spec
    return spec


def list_specs() -> list[EnvSpec]:
    return list(_REGISTRY.values())


def get_spec(env_id: str) -> EnvSpec:
    """The spec for a course id (or a card tag such as FrozenLake-v1-4x4-no_slippery)."""
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    resolved = _from_tag(env_id)
    if resolved is not None:
        return _REGISTRY[resolved[0]]
    hints = closest(env_id, list(_REGISTRY))
    hint = f" Did you mean {' or '.join(hints)}?" if hints else ""
    raise UserError(f"Unknown environment id '{env_id}'.{hint} Run 'deeprl envs' to list them.")


def resolve_env(env_id: str, env_kwargs: dict | None = None) -> tuple[EnvSpec, dict]:
    """(spec, effective kwargs): a card tag brings its kwargs; explicit kwargs win over the spec's defaults."""
    spec = get_spec(env_id)
    return spec, {**spec.default_kwargs, **_tag_kwargs(env_id, spec), **(env_kwargs or {})}


def env_tag(env_id: str, env_kwargs: dict | None = None) -> str:
    spec, kwargs = resolve_env(env_id, env_kwargs)
    return spec.card_tag(kwargs)


def ranked_task(env_id: Any, env_kwargs: Any = None, env_tag: str | None = None) -> tuple[str | None, str | None]:
    """(tag, None) when a model's env id and kwargs are exactly a ranked course task, else (tag or None, reason).

    Verification evaluates a model on the task its tag names, built from the tag alone; this says whether the
    model's own settings are that task. Anything else (a longer time limit, other physics, a hand-made map) is a
    custom task: it may be a fine model, but its figures are not comparable, so it is listed and never ranked.
    """
    if not isinstance(env_id, str) or len(env_id) > 100:
        return None, "config.json names no usable env id"
    try:
        spec = get_spec(env_id)
    except UserError:
        return None, f"'{env_id[:100]}' is not an environment this leaderboard ranks"
    if env_kwargs is None:
        env_kwargs = {}
    if not isinstance(env_kwargs, dict):
        return None, "config.json's env_kwargs is not an object"
    kwargs = {**spec.default_kwargs, **_tag_kwargs(env_id, spec), **env_kwargs}
    extra = sorted(str(k)[:40] for k in kwargs if k not in spec.task_kwargs)
    if extra:
        return None, (
            f"custom task: the model was trained with env kwargs {', '.join(extra)}, which "
            f"{spec.course_id}'s ranked task does not take"
        )
    for key, allowed in spec.task_kwargs.items():
        if key in kwargs and not any(type(kwargs[key]) is type(a) and kwargs[key] == a for a in allowed):
            return None, (
                f"custom task: {key}={str(kwargs[key])[:40]!s} is not one of the values the ranked "
                f"{spec.course_id} tasks use ({', '.join(map(str, allowed))})"
            )
    tag = spec.card_tag(kwargs)
    if env_tag is not None and env_tag != tag:
        return None, f"custom task: config.json says env_tag {str(env_tag)[:100]}, but its env and kwargs are {tag}"
    return tag, None


def make_env(
    env_id: str, env_kwargs: dict | None = None, *, render_mode: str | None = None, training: bool = False
) -> Any:  # a gymnasium.Env (gymnasium is imported only when an env is built)
    """Build the Gymnasium env for a course id. `training` selects training-only wrappers (Atari clipping...)."""
    spec, kwargs = resolve_env(env_id, env_kwargs)
    if "render_mode" in kwargs:
        raise UserError(
            f"render_mode cannot be an env kwarg ({spec.course_id}); deeprl sets it itself: "
            "'deeprl enjoy' renders to a window and 'deeprl record' to a video."
        )
    if spec.requires:
        try:
            importlib.import_module(spec.requires)
        except ImportError:
            raise UserError(
                f"{spec.course_id} needs the Python package '{spec.requires}', which is not installed; "
                f"install it with: pip install {spec.requires.replace('_', '-')}."
            ) from None
    if spec.gym_id and spec.gym_id != spec.course_id:
        note(
            f"{spec.course_id} runs as {spec.gym_id} (the course's id is deprecated in today's library; same task).",
            once_key=spec.course_id,
        )
    try:
        return spec.make(kwargs, render_mode, training)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "got an unexpected" in str(exc):
            raise UserError(f"{spec.course_id} does not take the env kwargs {sorted(kwargs)} ({exc}).") from None
        raise
    except (ValueError, KeyError) as exc:
        if kwargs:
            raise UserError(f"{spec.course_id} refused the env kwargs {kwargs}: {exc}.") from None
        raise


def parse_env_kwargs(items: list[str] | None) -> dict:
    """RL-Zoo's `--env-kwargs map_name:4x4 is_slippery:False` -> {'map_name': '4x4', 'is_slippery': False}."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition(":")
        if not sep or not key:
            raise UserError(f"'{item}' is not of the form key:value (for example is_slippery:False).")
        value = yaml.safe_load(raw) if raw else ""
        if isinstance(raw, str) and raw in ("True", "False"):
            value = raw == "True"
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------------------
# Builders


def _gym(gym_id: str, **fixed: Any) -> MakeFn:
    def make(kwargs: dict, render_mode: str | None, training: bool) -> Any:
        import gymnasium as gym

        return gym.make(gym_id, render_mode=render_mode, **{**fixed, **kwargs})

    return make


def _lazy(module: str, func: str = "make") -> MakeFn:
    """A builder that lives in another module, imported only when used."""

    def make(kwargs: dict, render_mode: str | None, training: bool) -> Any:
        return getattr(importlib.import_module(module), func)(kwargs, render_mode, training)

    return make


def _frozenlake_tag(kw: dict) -> str:
    tag = f"FrozenLake-v1-{kw.get('map_name', '4x4')}"
    return tag if kw.get("is_slippery", True) else tag + "-no_slippery"


def taxi_eval_seeds() -> tuple[int, ...]:
    return tuple(json.loads(resources.files("deeprl.data").joinpath("taxi-eval-seeds.json").read_text()))


def _tag_kwargs(env_id: str, spec: EnvSpec) -> dict:
    """The kwargs a card tag names (FrozenLake-v1-4x4-no_slippery: map_name and is_slippery); none for a course id."""
    resolved = _from_tag(env_id) if env_id != spec.course_id else None
    return resolved[1] if resolved is not None else {}


def _from_tag(tag: str) -> tuple[str, dict] | None:
    if tag.startswith("FrozenLake-v1-"):
        rest = tag[len("FrozenLake-v1-") :]
        slippery = not rest.endswith("-no_slippery")
        map_name = rest.removesuffix("-no_slippery")
        if map_name in ("4x4", "8x8"):
            return "FrozenLake-v1", {"map_name": map_name, "is_slippery": slippery}
    for spec in _REGISTRY.values():
        if spec.tag is None and spec.course_id == tag:
            return spec.course_id, {}
    for spec in _REGISTRY.values():  # a tag its spec names whatever the kwargs (ML-Agents-SoccerTwos, ...)
        if spec.tag is not None and spec.course_id != "FrozenLake-v1" and spec.card_tag() == tag:
            return spec.course_id, {}
    return None


register(
    EnvSpec(
        "FrozenLake-v1",
        "2",
        _gym("FrozenLake-v1"),
        description="Walk a frozen lake to the goal (tabular)",
        default_kwargs={"map_name": "4x4", "is_slippery": True},
        tag=_frozenlake_tag,
        n_eval_episodes=100,
        eval_max_steps=99,
        task_kwargs={"map_name": ("4x4", "8x8"), "is_slippery": (True, False)},
    )
)
register(
    EnvSpec(
        "Taxi-v3",
        "2",
        _gym("Taxi-v4"),
        gym_id="Taxi-v4",
        description="Pick up and drop off a passenger (tabular)",
        n_eval_episodes=100,
        eval_max_steps=99,
        eval_seeds=taxi_eval_seeds(),
    )
)
register(EnvSpec("CartPole-v1", "4", _gym("CartPole-v1"), description="Balance a pole on a cart"))
register(
    EnvSpec(
        "LunarLander-v2",
        "1",
        _gym("LunarLander-v3"),
        gym_id="LunarLander-v3",
        description="Land a module between the flags (Box2D)",
    )
)
register(EnvSpec("MountainCar-v0", "-", _gym("MountainCar-v0"), description="Drive an underpowered car up a hill"))
register(EnvSpec("Acrobot-v1", "-", _gym("Acrobot-v1"), description="Swing a two-link arm above a line"))
# Atari (Unit 3). Evaluation samples actions as huggingface_sb3/RL-Zoo do for Atari (their enjoy and push_to_hub
# pass deterministic=False); for DQN that is epsilon-greedy with the run's exploration_final_eps, what SB3's
# DQN.predict(deterministic=False) does with a trained model's exploration_rate.
for _game, _what in (
    ("SpaceInvaders", "Shoot the descending invaders"),
    ("BeamRider", "Destroy enemy ships on beams"),
    ("Breakout", "Break the bricks with a ball"),
    ("Enduro", "Overtake cars in an endurance race"),
    ("Pong", "Beat the computer at Pong"),
):
    register(
        EnvSpec(
            f"{_game}NoFrameskip-v4",
            "3",
            _lazy("deeprl.envs.atari", f"make_{_game.lower()}"),
            description=f"{_what} (Atari, ale-py; SB3 AtariWrapper preprocessing)",
            deterministic=False,
            requires="ale_py",
        )
    )
# Unit 4. The course's evaluate_agent samples from the policy (policy.act draws from the softmax) with max_steps =
# max_t = 10,000; design.md's protocol is deterministic (argmax) unless an env says otherwise, and CartPole-v1 from the
# same notebook is already evaluated deterministically, so Pixelcopter is too; evaluate(agent, deterministic=False)
# gives the course's sampled figure (along one training run argmax scored higher than sampling at 3 of 4
# checkpoints). The env truncates at 10,000 steps itself.
register(
    EnvSpec(
        "Pixelcopter-PLE-v0",
        "4",
        _lazy("deeprl.envs.pixelcopter"),
        description="Fly a pixel helicopter through a cave (PLE's Pixelcopter, re-implemented)",
        n_eval_episodes=10,
        eval_max_steps=10_000,
        deterministic=True,
    )
)
register(
    EnvSpec(
        "SoccerTwos",
        "7",
        _lazy("deeprl.envs.soccer"),
        description="2 vs 2 soccer (AI vs AI); evaluated as matches against the scripted team",
        tag=lambda kw: "ML-Agents-SoccerTwos",
        n_eval_episodes=20,
        deterministic=False,
    )
)
# Unit 6 (panda-gym on PyBullet). Observations are Dicts (observation, achieved_goal, desired_goal); 50-step episodes.
register(
    EnvSpec(
        "PandaReachDense-v3",
        "6",
        _lazy("deeprl.envs.panda", "make_reach_dense"),
        description="Move a Panda arm's gripper to a target (panda-gym, dense reward)",
        requires="panda_gym",
    )
)
register(
    EnvSpec(
        "PandaPickAndPlace-v3",
        "6",
        _lazy("deeprl.envs.panda", "make_pick_and_place"),
        description="Pick a cube and place it at a target with a Panda arm (panda-gym)",
        requires="panda_gym",
    )
)
# Bonus 3 (Decision Transformers): continuous-action tasks for offline datasets made from our own agents.
register(
    EnvSpec(
        "LunarLanderContinuous-v3",
        "B3",
        _gym("LunarLander-v3", continuous=True),
        description="Land a module between the flags with two continuous throttles (Box2D)",
    )
)
register(
    EnvSpec(
        "HalfCheetah-v5",
        "B3",
        _gym("HalfCheetah-v5"),
        description="Make a two-legged cheetah run forward (MuJoCo; the course's D4RL halfcheetah)",
        requires="mujoco",
    )
)
# Unit 8.2 (ViZDoom): the scenarios as Sample Factory trains them (deeprl/envs/doom.py); evaluation samples actions,
# as SF's enjoy does by default (--eval_deterministic is off), which is how the course's cards were scored.
register(
    EnvSpec(
        "doom_health_gathering_supreme",
        "8.2",
        _lazy("deeprl.envs.doom", "make_health_gathering_supreme"),
        description="Survive on an acid floor by picking up medkits (ViZDoom, Sample Factory's scenario)",
        deterministic=False,
        requires="vizdoom",
    )
)
register(
    EnvSpec(
        "doom_health_gathering",
        "-",
        _lazy("deeprl.envs.doom", "make_health_gathering"),
        description="Survive on an acid floor by picking up medkits, the plainer map (ViZDoom)",
        deterministic=False,
        requires="vizdoom",
    )
)
register(
    EnvSpec(
        "doom_basic",
        "-",
        _lazy("deeprl.envs.doom", "make_basic"),
        description="Shoot the monster across the room (ViZDoom)",
        deterministic=False,
        requires="vizdoom",
    )
)
register(
    EnvSpec(
        "doom_defend_the_center",
        "-",
        _lazy("deeprl.envs.doom", "make_defend_the_center"),
        description="Turn and shoot the monsters closing in (ViZDoom)",
        deterministic=False,
        requires="vizdoom",
    )
)
# Unit 5: evaluation samples actions, as an ML-Agents agent plays by default (BehaviorParameters'
# DeterministicInference is off unless a user ticks it; mlagents-learn's --deterministic is off too).
register(
    EnvSpec(
        "Pyramids",
        "5",
        _lazy("deeprl.envs.pyramids"),
        description="Press the switch, topple the pyramid, touch the gold brick (ML-Agents Pyramids, native)",
        tag=lambda kw: "ML-Agents-Pyramids",
        n_eval_episodes=10,
        deterministic=False,
    )
)
register(
    EnvSpec(
        "SnowballTarget",
        "5",
        _lazy("deeprl.envs.snowball"),
        description="Shoot snowballs at targets that pop up (ML-Agents SnowballTarget, native)",
        tag=lambda kw: "ML-Agents-SnowballTarget",
        n_eval_episodes=10,
        deterministic=False,
    )
)
# Bonus Unit 1: Huggy the dog fetches sticks (deeprl/envs/huggy.py, PyBullet); evaluation samples actions, as an
# ML-Agents agent plays by default (as Pyramids and SnowballTarget).
register(
    EnvSpec(
        "Huggy",
        "B1",  # Bonus Unit 1
        _lazy("deeprl.envs.huggy"),
        description="A four-legged dog runs to the stick, which respawns when reached (ML-Agents Huggy, PyBullet)",
        tag=lambda kw: "ML-Agents-Huggy",
        n_eval_episodes=10,
        deterministic=False,
    )
)


# ---------------------------------------------------------------------------------------------------------
# The course ids in Gymnasium's own registry, so that the course's `gym.make("Pixelcopter-PLE-v0")` runs unchanged
# (deeprl/__init__.py calls register_gymnasium once gymnasium is imported; nothing is built until gym.make).

GYM_ENTRY_POINT = "deeprl.envs.registry:gym_make"
# packages that register the same ids with Gymnasium themselves (ale_py: the raw NoFrameskip games, without the SB3
# preprocessing our builders add; panda_gym: the Panda tasks): theirs stay what gym.make builds
OWN_REGISTRATION = ("ale_py", "panda_gym")


def gym_make(deeprl_id: str, render_mode: str | None = None, **env_kwargs: Any) -> Any:  # a gymnasium.Env
    """gymnasium.make's entry point for a course id: the env deeprl evaluates on, with the kwargs gym.make got."""
    return make_env(deeprl_id, env_kwargs, render_mode=render_mode)


def register_gymnasium() -> list[str]:
    """Register with Gymnasium each course id it does not know yet (Pixelcopter-PLE-v0, SoccerTwos, Pyramids,
    SnowballTarget, the deprecated LunarLander-v2 and Taxi-v3, the doom_* scenarios where vizdoom is installed);
    Gymnasium's own ids (CartPole-v1, FrozenLake-v1, ...) and those another package registers stay theirs. Returns
    the ids added by this call (none on a second call)."""
    import importlib.util

    import gymnasium

    added = []
    for spec in _REGISTRY.values():
        if spec.course_id in gymnasium.registry or spec.requires in OWN_REGISTRATION:
            continue
        if spec.requires and importlib.util.find_spec(spec.requires) is None:
            continue
        gymnasium.register(spec.course_id, entry_point=GYM_ENTRY_POINT, kwargs={"deeprl_id": spec.course_id})
        added.append(spec.course_id)
    return added
