"""panda-gym envs: registered with the course ids, Dict observations, headless rgb_array, clean stdout."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("panda_gym")

from deeprl.envs import get_spec, make_env  # noqa: E402


def test_registered_with_course_ids():
    for env_id in ("PandaReachDense-v3", "PandaPickAndPlace-v3"):
        spec = get_spec(env_id)
        assert spec.unit == "6" and spec.requires == "panda_gym" and spec.card_tag({}) == env_id


def test_reach_dense_dict_observation_and_dense_reward():
    env = make_env("PandaReachDense-v3")
    try:
        obs, _ = env.reset(seed=3)
        assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
        assert obs["observation"].shape == (6,) and obs["desired_goal"].shape == (3,)
        assert env.action_space.shape == (3,)
        _, reward, _, _, _ = env.step(np.zeros(3, dtype=np.float32))
        assert reward < 0  # dense reward: minus the distance to the goal
        obs2, _ = env.reset(seed=3)
        np.testing.assert_array_equal(obs["desired_goal"], obs2["desired_goal"])  # seeded goals repeat
    finally:
        env.close()


def test_pick_and_place_builds():
    env = make_env("PandaPickAndPlace-v3")
    try:
        obs, _ = env.reset(seed=0)
        assert obs["observation"].shape == (19,) and env.action_space.shape == (4,)
    finally:
        env.close()


def test_rgb_array_renders_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    env = make_env("PandaReachDense-v3", render_mode="rgb_array")
    try:
        env.reset(seed=0)
        frame = env.render()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        assert frame.std() > 0  # a drawn scene, not a blank buffer
    finally:
        env.close()


def test_pybullet_prints_nothing_on_stdout():
    """PyBullet writes from C to fd 1; deeprl's --json output must stay one JSON object."""
    code = "from deeprl.envs import make_env\ne = make_env('PandaReachDense-v3'); e.reset(seed=0); e.close()\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""


def test_unknown_renderer_is_refused():
    from deeprl.errors import UserError

    with pytest.raises(UserError):
        make_env("PandaReachDense-v3", {"renderer": "OpenGL"})
