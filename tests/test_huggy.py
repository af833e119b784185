"""Huggy (Bonus Unit 1): the dog's spaces, the course's four reward terms on scripted poses, the stick's respawn,
training with the course's Huggy.yaml as written, and the serve page where a click moves the stick."""

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from deeprl.envs import huggy
from deeprl.envs.huggy import HuggyEnv, reward_terms

DATA = Path(__file__).parent / "data"


@pytest.fixture
def env():
    e = HuggyEnv()
    e.reset(seed=0)
    yield e
    e.close()


def pose(env: HuggyEnv, yaw: float, stick: tuple[float, float]) -> None:
    """The dog standing still at the origin facing `yaw`, the stick at `stick`."""
    env._place_dog(0.0, 0.0, yaw)
    env._read()
    env.place_stick(*stick)


def test_spaces_and_observation_layout(env):
    assert env.observation_space.shape == (30,) and env.action_space.shape == (8,)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    pose(env, 0.0, (3.0, 4.0))
    obs = env.observe()
    assert obs.dtype == np.float32 and obs.shape == (30,)
    assert obs[3] == pytest.approx(5.0)  # the distance to the stick
    np.testing.assert_allclose(obs[0:3], [0.6, 0.8, 0.0], atol=1e-6)  # its direction in the body frame
    np.testing.assert_allclose(obs[4:7], [0.0, 0.0, -1.0], atol=1e-6)  # gravity: standing level
    pose(env, math.pi / 2, (3.0, 4.0))  # turned left 90 degrees: the stick is now ahead and to the right
    np.testing.assert_allclose(env.observe()[0:3], [0.8, -0.6, 0.0], atol=1e-6)
    obs, reward, term, trunc, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float) and not term and not trunc


def test_reward_terms_on_scripted_poses():
    ahead, still = np.array([1.0, 0.0, 0.0]), np.zeros(3)
    facing = reward_terms(ahead, np.array([4.0, 0.0, 0.0]), still, still, False)
    away = reward_terms(ahead, np.array([-4.0, 0.0, 0.0]), still, still, False)
    assert facing["orientation"] == pytest.approx(huggy.FACING_WEIGHT)
    assert away["orientation"] == pytest.approx(-huggy.FACING_WEIGHT)
    running = reward_terms(ahead, np.array([4.0, 0.0, 0.0]), np.array([1.5, 0.0, 0.0]), still, False)
    assert running["orientation"] == pytest.approx(huggy.FACING_WEIGHT + 1.5 * huggy.APPROACH_WEIGHT)
    assert facing["time"] == away["time"] == huggy.TIME_PENALTY < 0
    slow = reward_terms(ahead, np.array([4.0, 0.0, 0.0]), still, np.array([0.0, 0.0, 1.0]), False)
    fast = reward_terms(ahead, np.array([4.0, 0.0, 0.0]), still, np.array([0.0, 0.0, -3.0]), False)
    assert facing["rotation"] == 0.0 and fast["rotation"] < slow["rotation"] < 0
    assert fast["rotation"] == pytest.approx(9 * slow["rotation"])
    rocking = reward_terms(ahead, np.array([4.0, 0.0, 0.0]), still, np.array([2.0, 2.0, 0.0]), False)
    assert rocking["rotation"] == 0.0  # a gait's pitch and roll are not spinning
    assert reward_terms(ahead, np.array([0.1, 0.0, 0.0]), still, still, True)["reach"] == huggy.REACH_REWARD


def test_env_reward_facing_the_stick_beats_facing_away(env):
    rewards = {}
    for name, yaw in (("facing", 0.0), ("away", math.pi)):
        pose(env, yaw, (5.0, 0.0))
        rewards[name] = env.step(np.zeros(8))[1]
    assert rewards["facing"] > rewards["away"]
    assert rewards["facing"] - rewards["away"] == pytest.approx(2 * huggy.FACING_WEIGHT, abs=0.002)


def test_the_stick_respawns_when_reached_and_the_episode_goes_on(env):
    pose(env, 0.0, (0.2, 0.0))
    obs, reward, term, trunc, info = env.step(np.zeros(8))
    assert "fetch_time" in info and info["sticks"] == 1 and not term and not trunc
    assert reward > huggy.REACH_REWARD - 0.05
    here = env._state["pos"][:2]
    assert np.linalg.norm(env.stick - here) >= huggy.MIN_STICK_DISTANCE
    assert np.abs(env.stick).max() <= huggy.FIELD_HALF
    assert obs[3] == pytest.approx(np.linalg.norm(env.stick - here), abs=1e-4)
    env.step(np.zeros(8))
    assert env.sticks == 1  # the new stick is far: nothing more until the dog gets there


def test_time_limit_truncates():
    e = HuggyEnv(max_decisions=5)
    e.reset(seed=1)
    ends = [e.step(e.action_space.sample())[3] for _ in range(5)]
    assert ends == [False] * 4 + [True]
    e.close()


def test_registry_gym_id_tag_and_replay_frame():
    import gymnasium as gym

    import deeprl  # noqa: F401  (registers the course ids with Gymnasium)
    from deeprl.envs import env_tag, make_env

    assert env_tag("Huggy") == "ML-Agents-Huggy"
    e = make_env("Huggy", render_mode="rgb_array")
    e.reset(seed=0)
    frame = e.render()
    assert frame.dtype == np.uint8 and frame.shape == (240, 320, 3) and frame.std() > 0
    e.close()
    g = gym.make("Huggy")
    assert g.reset(seed=0)[0].shape == (30,)
    g.close()


def test_huggy_yaml_maps_onto_ppo_as_the_course_wrote_it():
    import yaml

    from deeprl.commands.mlagents_learn import env_from
    from deeprl.mlagents import read_trainer_config

    hp = read_trainer_config(yaml.safe_load((DATA / "Huggy.yaml").read_text()), "Huggy", "ML-Agents-Huggy", "x")
    assert hp["normalize"] == {"norm_obs": True, "norm_reward": False}
    assert hp["policy_kwargs"]["net_arch"] == [512, 512, 512] and hp["gamma"] == 0.995
    assert hp["n_steps"] == 1000 and hp["n_envs"] == 20 and hp["n_timesteps"] == 2_000_000
    assert hp["batch_size"] == 2048 and hp["n_epochs"] == 3 and hp["learning_rate"] == "lin_0.0003"
    zoo = yaml.safe_load((Path(huggy.__file__).parents[1] / "hyperparams" / "ppo.yml").read_text())["Huggy"]
    # the same settings, but for how fast they run (torch_threads, vectorization: ppo.yml's, under any trainer file)
    own = {"learning_rate", "torch_threads", "vectorization"}
    assert {k: v for k, v in hp.items() if k not in own} == {k: v for k, v in zoo.items() if k not in own}
    assert env_from("./trained-envs-executables/linux/Huggy/Huggy", "unused.yaml") == "Huggy"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory) -> str:
    """A few PPO updates with Huggy.yaml (smaller rollouts), pushed to the local hub as alice/ppo-Huggy."""
    import os

    from deeprl.train import train

    home = tmp_path_factory.mktemp("huggy-home")
    old = os.environ.get("DEEPRL_HOME")
    os.environ["DEEPRL_HOME"] = str(home)  # the module's hub, which each test below points at again
    try:
        run = train(
            "ppo",
            "Huggy",
            hyperparams_file=str(DATA / "Huggy.yaml"),
            overrides={"n_envs": 2, "n_steps": 64, "batch_size": 64},
            n_timesteps=384,
            seed=0,
            log_folder=tmp_path_factory.mktemp("huggy-train"),
            show_progress=False,
        )
        config = json.loads((run.run_dir / "config.json").read_text())
        assert config["trained"]["updates"] == 3 and config["hyperparams"]["gamma"] == 0.995
        from deeprl.modelio import load_model, save_model
        from lb_helpers import push_folder

        folder = tmp_path_factory.mktemp("huggy-push")
        model_config, tensors = load_model(run.run_dir)
        save_model(folder, tensors, model_config)
        (folder / "README.md").write_text("---\nlibrary_name: deeprl\ntags:\n- ML-Agents-Huggy\n---\n# Huggy\n")
        push_folder(folder, "alice/ppo-Huggy")
    finally:
        if old is None:
            os.environ.pop("DEEPRL_HOME", None)
        else:
            os.environ["DEEPRL_HOME"] = old
    return str(home)


def test_ppo_trains_and_the_agent_acts(pushed, monkeypatch):
    monkeypatch.setenv("DEEPRL_HOME", pushed)
    from deeprl.agent import load_agent

    agent = load_agent("alice/ppo-Huggy")
    e = HuggyEnv()
    obs, _ = e.reset(seed=0)
    action = agent.act(obs, deterministic=False)
    assert action.shape == (8,) and np.abs(action).max() <= 1.0
    e.close()


def huggy_children() -> list[int]:
    """This process's children running a Huggy model (deeprl.web.huggy)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"deeprl.web.huggy" in cmd:
            found.append(int(entry.name))
    return found


def test_serve_page_and_a_click_moves_the_stick(pushed, monkeypatch):
    """On a real server (uvicorn on loopback, as test_play_child runs the league's play page): the page, the model
    in its child, a click that moves the stick, and no child left once the page goes away."""
    import urllib.request

    from websockets.sync.client import connect

    from test_play_child import server, until

    monkeypatch.setenv("DEEPRL_HOME", pushed)
    with server() as port:
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/huggy/alice/ppo-Huggy", timeout=30) as r:
            text = r.read().decode()
        assert "/static/huggy.js" in text and "/huggy/alice/ppo-Huggy/ws" in text
        url = f"ws://127.0.0.1:{port}/huggy/alice/ppo-Huggy/ws"
        with connect(url, origin=base, proxy=None, open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=60))
            assert hello.get("hello", {}).get("field") == huggy.FIELD_HALF, hello
            assert len(huggy_children()) == 1
            first = json.loads(ws.recv(timeout=30))
            assert set(first) >= {"dog", "feet", "stick", "sticks", "t"} and len(first["feet"]) == 4
            ws.send(json.dumps({"stick": [3.0, -2.5]}))
            deadline = time.monotonic() + 30
            msg = first
            while msg["stick"] != [3.0, -2.5]:
                msg = json.loads(ws.recv(timeout=30))
                assert "error" not in msg and time.monotonic() < deadline, msg
            ws.send(json.dumps({"stick": [100.0, "x"]}))  # not a place: ignored
            ws.send(json.dumps({"stick": [100.0, -100.0]}))  # off the field: clamped to its edge
            while msg["stick"] != [huggy.FIELD_HALF, -huggy.FIELD_HALF]:
                msg = json.loads(ws.recv(timeout=30))
                assert "error" not in msg and time.monotonic() < deadline, msg
            assert msg["t"] > first["t"]
        until(lambda: not huggy_children(), 30)


def test_a_missing_model_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPRL_HOME", str(tmp_path))
    from fastapi.testclient import TestClient

    from deeprl.web import create_app

    client = TestClient(create_app(watch_interval_s=None))
    with client.websocket_connect("/huggy/nobody/nothing/ws") as ws:
        msg = ws.receive_json()
    assert msg["error"].startswith("nobody/nothing cannot play")


def test_native_vector_env_steps_the_dogs_as_a_sync_vector_env_does():
    """HuggyVectorEnv (what training uses) against Gymnasium's SyncVectorEnv of single dogs: the same seeds and
    actions give the same observations, rewards and episode ends, through a time limit and its autoreset."""
    import gymnasium as gym

    from deeprl.envs.huggy import HuggyVectorEnv

    native = HuggyVectorEnv(3, max_decisions=7)
    sync = gym.vector.SyncVectorEnv(
        [lambda: HuggyEnv(max_decisions=7) for _ in range(3)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    np.testing.assert_array_equal(native.reset(seed=5)[0], sync.reset(seed=5)[0])
    actions = np.random.default_rng(0).uniform(-1, 1, size=(16, 3, 8))
    actions[2, 1] = 0.0
    cut = 0
    for a in actions:
        got, want = native.step(a), sync.step(a)
        for x, y in zip(got[:4], want[:4]):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        if want[3].any():
            cut += 1
            mask = want[4]["_final_obs"]
            np.testing.assert_array_equal(got[4]["_final_obs"], mask)
            np.testing.assert_allclose(got[4]["final_obs"][mask], np.stack(want[4]["final_obs"][mask]), atol=1e-7)
    assert cut == 2  # steps 7 and 14
    native.close()
    sync.close()
