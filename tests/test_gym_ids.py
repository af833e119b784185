"""Issue 20 item 4: after `import deeprl`, gymnasium.make knows the course's ids of our native envs, so the course's
own lines (`gym.make("Pixelcopter-PLE-v0")`, `gym.make("SoccerTwos")`, ...) run unchanged.

Each check runs in a fresh interpreter: the registration happens when gymnasium is first imported (or at
`import deeprl` when it already is), which a test process that imported both long ago cannot show.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

NATIVE = ["Pixelcopter-PLE-v0", "SoccerTwos", "Pyramids", "SnowballTarget", "LunarLander-v2", "Taxi-v3"]
DOOM = ["doom_basic", "doom_health_gathering", "doom_health_gathering_supreme", "doom_defend_the_center"]


def python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


MAKE_ALL = """
import json, sys
ids = {ids!r}
{imports}
import numpy as np
out = {{}}
for env_id in ids:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    obs2, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    out[env_id] = [env.spec.id, env.observation_space.contains(obs), env.observation_space.contains(obs2),
                   env.spec.entry_point]
    env.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import deeprl\nimport gymnasium as gym",  # the course's order: our import first
        "import gymnasium as gym\nimport deeprl",  # gymnasium already imported: registered at `import deeprl`
    ],
)
def test_gym_make_knows_the_course_ids_after_import_deeprl(imports: str) -> None:
    out = python(MAKE_ALL.format(ids=NATIVE, imports=imports))
    for env_id in NATIVE:
        spec_id, obs_ok, obs2_ok, entry = out[env_id]
        assert (spec_id, obs_ok, obs2_ok) == (env_id, True, True), (env_id, out[env_id])
        assert entry == "deeprl.envs.registry:gym_make"


def test_without_import_deeprl_the_ids_are_unknown_and_the_module_prefix_works() -> None:
    out = python(
        "import json, gymnasium as gym\n"
        "known = 'Pixelcopter-PLE-v0' in gym.registry\n"
        "env = gym.make('deeprl:Pixelcopter-PLE-v0')\n"  # Gymnasium's own "module:id" form imports deeprl
        "obs, _ = env.reset(seed=0)\n"
        "print(json.dumps([known, env.spec.id, obs.tolist()]))"
    )
    known, spec_id, obs = out
    assert known is False
    assert spec_id == "Pixelcopter-PLE-v0"
    # the same env deeprl evaluates on: the same first observation for the same seed
    from deeprl.envs import make_env

    env = make_env("Pixelcopter-PLE-v0")
    ours, _ = env.reset(seed=0)
    env.close()
    assert obs == ours.tolist()


def test_import_deeprl_stays_light_and_leaves_gymnasiums_own_ids_alone() -> None:
    out = python(
        "import json, sys\n"
        "import deeprl\n"
        "light = [m for m in ('gymnasium', 'torch', 'numpy', 'yaml') if m in sys.modules]\n"
        "import gymnasium as gym\n"
        "import ale_py\n"
        "gym.register_envs(ale_py)\n"
        "print(json.dumps([light, gym.spec('CartPole-v1').entry_point, gym.spec('FrozenLake-v1').entry_point,"
        " gym.spec('SpaceInvadersNoFrameskip-v4').entry_point, gym.spec('Pixelcopter-PLE-v0').entry_point]))"
    )
    light, cartpole, frozen, invaders, copter = out
    assert light == []  # `import deeprl` imports none of them: the registration waits for gymnasium
    assert cartpole == "gymnasium.envs.classic_control.cartpole:CartPoleEnv"
    assert frozen.startswith("gymnasium.envs.toy_text")
    assert not invaders.startswith("deeprl")  # ale_py's raw game, not our preprocessed one
    assert copter == "deeprl.envs.registry:gym_make"


def test_course_kwargs_pass_through_gym_make() -> None:
    out = python(
        "import json, deeprl, gymnasium as gym\n"
        "env = gym.make('Pixelcopter-PLE-v0', max_episode_steps=3)\n"  # our builder's kwarg, not gym.make's own
        "env.reset(seed=0)\n"
        "ends = [env.step(1)[3] for _ in range(3)]\n"
        "print(json.dumps(ends))"
    )
    assert out == [False, False, True]


@pytest.mark.skipif(importlib.util.find_spec("vizdoom") is None, reason="vizdoom is not installed")
def test_doom_ids_when_vizdoom_is_installed() -> None:
    out = python(MAKE_ALL.format(ids=DOOM[:2], imports="import deeprl\nimport gymnasium as gym"))
    for env_id in DOOM[:2]:
        assert out[env_id][:3] == [env_id, True, True]
    listed = python(f"import json, deeprl, gymnasium as gym\nprint(json.dumps([i in gym.registry for i in {DOOM!r}]))")
    assert listed == [True] * len(DOOM)


def test_doom_ids_are_left_out_without_vizdoom() -> None:
    out = python(
        "import json, sys\n"
        "sys.modules['vizdoom'] = None\n"  # as if it were not installed: importlib.util.find_spec gives None
        "import deeprl, gymnasium as gym\n"
        "print(json.dumps(['doom_basic' in gym.registry, 'Pyramids' in gym.registry]))"
    )
    assert out == [False, True]
