"""Issue 20 item 1: Stable-Baselines3 .zip models, read without unpickling anything (deeprl/sb3.py).

The models are trained here with SB3 itself (a few hundred steps: they need not be good, only SB3's), saved with
SB3's own `save`, then evaluated by deeprl and by SB3's `evaluate_policy` on the same per-episode seeds.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import A2C, DQN, PPO, SAC  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402

from deeprl import sb3  # noqa: E402
from deeprl.agent import load_agent  # noqa: E402
from deeprl.cli import main  # noqa: E402
from deeprl.errors import UserError  # noqa: E402
from deeprl.evaluation import evaluate  # noqa: E402
from deeprl.policies.actor_critic import build_policy, load_policy_tensors  # noqa: E402

TRAIN = {
    "ppo": lambda: PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=4, seed=0),
    "dqn": lambda: DQN("MlpPolicy", "CartPole-v1", learning_starts=100, train_freq=4, buffer_size=2000, seed=0),
    "a2c": lambda: A2C("MlpPolicy", "CartPole-v1", seed=0),
}
STEPS = {"ppo": 256, "dqn": 300, "a2c": 200}
LOAD = {"ppo": PPO, "dqn": DQN, "a2c": A2C}


@pytest.fixture(scope="module")
def zips(tmp_path_factory):
    """{algo: path of `<algo>-CartPole-v1.zip`}, each trained and saved by SB3, named as the course names them."""
    folder = tmp_path_factory.mktemp("sb3")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks this small train fastest on one thread (several times so on a busy machine)
    out = {}
    for algo, make in TRAIN.items():
        model = make()
        model.learn(STEPS[algo])
        out[algo] = folder / f"{algo}-CartPole-v1.zip"
        model.save(out[algo])
    lander = PPO("MlpPolicy", "LunarLander-v3", n_steps=128, batch_size=64, n_epochs=4, seed=0)
    lander.learn(256)
    out["ppo-lander"] = folder / "ppo-LunarLander-v2.zip"  # the course's Unit 1 file name (the env is v3 today)
    lander.save(out["ppo-lander"])
    yield out
    torch.set_num_threads(threads)


def run_main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def sb3_returns(model, env_id: str, seeds) -> list[float]:
    """SB3's own evaluate_policy, one episode per seed: the env reset with seed s, as deeprl's protocol does."""
    returns = []
    for s in seeds:
        venv = make_vec_env(env_id, n_envs=1)
        venv.seed(s)  # taken by the reset evaluate_policy does first
        episode, _ = evaluate_policy(model, venv, n_eval_episodes=1, deterministic=True, return_episode_rewards=True)
        returns += episode
        venv.close()
    return returns


# -- the same figures as SB3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["ppo", "dqn", "a2c"])
def test_evaluate_gives_sb3s_own_figures(zips, algo, capsys):
    theirs = sb3_returns(LOAD[algo].load(zips[algo]), "CartPole-v1", range(10))
    ours = evaluate(load_agent(zips[algo]), seed=0)  # the course protocol: 10 episodes, seeds 0..9, deterministic
    assert ours["env_id"] == "CartPole-v1"
    assert ours["episode_rewards"] == theirs
    assert ours["mean_reward"] == float(np.mean(theirs))
    assert len(set(theirs)) > 1  # the seeds matter: equal lists are not a coincidence of constant episodes
    code, out, err = run_main(capsys, "evaluate", zips[algo], "--json")
    assert code == 0, err
    assert json.loads(out)["mean_reward"] == float(np.mean(theirs))


def test_evaluate_gives_sb3s_own_figures_on_lunarlander(zips):
    theirs = sb3_returns(PPO.load(zips["ppo-lander"]), "LunarLander-v3", range(5))
    ours = evaluate(load_agent(zips["ppo-lander"]), n_eval_episodes=5, seed=0)
    assert ours["env_id"] == "LunarLander-v2"  # from the file's name
    # SB3 reports Monitor's returns, rounded to 6 decimals; the sums before rounding are the same floats, added in
    # the same order, so the rounded figures are equal to the last bit
    assert [round(r, 6) for r in ours["episode_rewards"]] == theirs
    assert ours["episode_rewards"] != theirs  # (the rounding is real: these are not integer returns)
    assert len(set(theirs)) == 5


def test_convert_writes_our_format_with_the_same_figures(zips, tmp_path, capsys):
    code, out, err = run_main(capsys, "convert", zips["ppo"], "-f", tmp_path / "m")
    assert code == 0, err
    assert "SB3 PPO MlpPolicy on CartPole-v1" in out
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["algo"], config["env_id"], config["source"]["format"]) == ("ppo", "CartPole-v1", "stable-baselines3")
    assert (
        evaluate(load_agent(tmp_path / "m"))["episode_rewards"] == evaluate(load_agent(zips["ppo"]))["episode_rewards"]
    )
    code, _, err = run_main(capsys, "convert", zips["ppo"], "-f", tmp_path / "m")  # never over a model
    assert code == 2 and "already holds a model" in err


def test_a_zip_is_not_a_model_folder(zips):
    from deeprl.agent import model_dir

    with pytest.raises(UserError, match="deeprl convert"):
        model_dir(zips["dqn"])


# -- the name mapping, policy by policy (SB3's outputs against ours on random observations) ---------------------


class ImageEnv(gym.Env):
    """Atari-shaped frames (channels first) for a CnnPolicy; never stepped."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


class GoalEnv(gym.Env):
    """Panda-shaped Dict observations and Box actions, for a MultiInputPolicy; never stepped."""

    observation_space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-10, 10, (6,), np.float32),
            "achieved_goal": gym.spaces.Box(-10, 10, (3,), np.float32),
            "desired_goal": gym.spaces.Box(-10, 10, (3,), np.float32),
        }
    )
    action_space = gym.spaces.Box(-1, 1, (3,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


def _ours(path: Path, env: gym.Env):
    """Our ActorCritic from the zip's mapped weights, on the env's spaces (the env id only names the config)."""
    config, tensors = sb3.to_deeprl(sb3.read_zip(path), "CartPole-v1")
    policy = build_policy(env.observation_space, env.action_space, config["policy"])
    load_policy_tensors(policy, tensors, "test")
    return config, policy.eval()


@pytest.mark.parametrize(
    "case",
    ["mlp-discrete", "mlp-box-relu-uneven", "cnn", "multi-input", "a2c-box"],
)
def test_actor_critic_name_mapping_matches_sb3s_outputs(case, tmp_path):
    from torch import nn

    if case == "mlp-discrete":
        env, model = gym.make("LunarLander-v3"), PPO("MlpPolicy", "LunarLander-v3", n_steps=64, batch_size=64)
    elif case == "mlp-box-relu-uneven":
        env = gym.make("Pendulum-v1")
        kw = {"net_arch": {"pi": [32], "vf": [16, 16]}, "activation_fn": nn.ReLU, "log_std_init": -0.7}
        model = PPO("MlpPolicy", env, policy_kwargs=kw, n_steps=64, batch_size=64)
    elif case == "cnn":
        env, model = ImageEnv(), PPO("CnnPolicy", ImageEnv(), n_steps=16, batch_size=16)
    elif case == "multi-input":
        env, model = GoalEnv(), PPO("MultiInputPolicy", GoalEnv(), n_steps=16, batch_size=16)
    else:
        env, model = gym.make("Pendulum-v1"), A2C("MlpPolicy", "Pendulum-v1")
    with torch.no_grad():  # weights unlike a fresh init: a zero bias or an unused layer would hide a wrong mapping
        for p in model.policy.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save(tmp_path / "m.zip")
    config, ours = _ours(tmp_path / "m.zip", env)
    assert config["algo"] == ("a2c" if case == "a2c-box" else "ppo")
    assert config["source"]["policy"] == {"cnn": "CnnPolicy", "multi-input": "MultiInputPolicy"}.get(case, "MlpPolicy")
    obs = [env.observation_space.sample() for _ in range(32)]
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]} if isinstance(obs[0], dict) else np.stack(obs)
    sb3_obs, _ = model.policy.obs_to_tensor(batch)
    with torch.no_grad():
        dist = model.policy.get_distribution(sb3_obs).distribution
        values = model.policy.predict_values(sb3_obs).squeeze(-1)
        ours_obs = (
            {k: torch.as_tensor(v) for k, v in batch.items()} if isinstance(batch, dict) else torch.as_tensor(batch)
        )
        params, ours_values = ours(ours_obs)
    torch.testing.assert_close(ours_values, values, rtol=1e-5, atol=1e-5)
    if isinstance(env.action_space, gym.spaces.Discrete):
        torch.testing.assert_close(torch.softmax(params, -1), dist.probs, rtol=1e-5, atol=1e-6)
    else:
        torch.testing.assert_close(params, dist.mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours.log_std.expand_as(params).exp(), dist.stddev, rtol=1e-5, atol=1e-6)
    theirs_actions, _ = model.predict(batch, deterministic=True)
    with torch.no_grad():
        ours_actions = ours.action(ours_obs, True).numpy()
    if isinstance(env.action_space, gym.spaces.Box):
        ours_actions = np.clip(ours_actions, env.action_space.low, env.action_space.high)  # as PolicyAgent.act
    np.testing.assert_allclose(ours_actions, theirs_actions, rtol=1e-5, atol=1e-5)


def test_dqn_cnn_name_mapping_matches_sb3s_q_values(tmp_path):
    from deeprl.algos.dqn import build_qnet

    model = DQN("CnnPolicy", ImageEnv(), buffer_size=16, learning_starts=0)
    model.save(tmp_path / "dqn.zip")
    config, tensors = sb3.to_deeprl(sb3.read_zip(tmp_path / "dqn.zip"), "CartPole-v1")
    assert (config["algo"], config["policy"]["kind"], config["policy"]["n_actions"]) == ("dqn", "cnn", 5)
    net = build_qnet(config["policy"])
    net.load_state_dict({k[2:]: torch.as_tensor(v) for k, v in tensors.items()})
    obs = np.stack([ImageEnv.observation_space.sample() for _ in range(8)])
    with torch.no_grad():
        theirs = model.q_net(model.policy.obs_to_tensor(obs)[0])
        ours = net(torch.as_tensor(obs))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# -- which env ------------------------------------------------------------------------------------------------


def test_the_env_comes_from_the_name_the_spaces_or_env_and_a_mismatch_is_refused(zips, tmp_path, capsys):
    plain = tmp_path / "model.zip"  # a name that names no env: CartPole-v1 is the one course env with its spaces
    plain.write_bytes(zips["ppo"].read_bytes())
    assert load_agent(plain).env_id == "CartPole-v1"
    assert "names no env; CartPole-v1" in capsys.readouterr().err
    wrong = tmp_path / "ppo-LunarLander-v2.zip"  # the name says LunarLander; the spaces say otherwise
    wrong.write_bytes(zips["ppo"].read_bytes())
    code, _, err = run_main(capsys, "evaluate", wrong)
    assert code == 2
    assert "does not play LunarLander-v2" in err and "Box(8,)" in err and "Box(4,)" in err
    code, _, err = run_main(capsys, "convert", wrong, "-f", tmp_path / "out", "--env", "CartPole-v1")
    assert code == 0, err
    code, _, err = run_main(capsys, "convert", zips["ppo"], "-f", tmp_path / "o2", "--env", "Acrobot-v1")
    assert code == 2 and "does not play Acrobot-v1" in err
    code, out, err = run_main(capsys, "evaluate", wrong, "--env", "CartPole-v1")  # --env overrides the name
    assert code == 0, err
    assert out.startswith("CartPole-v1:")


def test_a_model_of_no_course_env_or_algorithm_is_refused(tmp_path, capsys):
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64).save(tmp_path / "ppo-pendulum.zip")
    code, _, err = run_main(capsys, "evaluate", tmp_path / "ppo-pendulum.zip")
    assert code == 2 and "give it with --env" in err
    SAC("MlpPolicy", "Pendulum-v1", buffer_size=10).save(tmp_path / "sac-Pendulum-v1.zip")
    code, _, err = run_main(capsys, "evaluate", tmp_path / "sac-Pendulum-v1.zip")
    assert code == 2 and "SAC/TD3/DDPG" in err


# -- nothing in the file runs ---------------------------------------------------------------------------------


class Touch:
    """Unpickling this opens (creates) a file: what a malicious `:serialized:` entry or policy.pth could do."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def rewrite(src: Path, dst: Path, **members: bytes) -> Path:
    """A copy of the zip `src` with some members replaced or added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, members.pop(name) if name in members else zin.read(name))
        for name, raw in members.items():
            zout.writestr(name, raw)
    return dst


def test_a_serialized_entry_that_would_create_a_file_is_never_run(zips, tmp_path, capsys):
    marker, proof = tmp_path / "pwned", tmp_path / "proof"
    payload = base64.b64encode(pickle.dumps(Touch(str(marker)))).decode()
    pickle.loads(base64.b64decode(base64.b64encode(pickle.dumps(Touch(str(proof))))))  # the payload is live
    assert proof.exists()
    with zipfile.ZipFile(zips["ppo"]) as zf:
        data = json.loads(zf.read("data"))
    for key in ("observation_space", "action_space", "policy_class", "lr_schedule", "clip_range"):
        data[key][":serialized:"] = payload
    data["evil"] = {":type:": "<class 'builtins.object'>", ":serialized:": payload}
    evil = rewrite(zips["ppo"], tmp_path / "ppo-CartPole-v1.zip", data=json.dumps(data).encode())
    code, out, err = run_main(capsys, "evaluate", evil, "--json")
    assert code == 0, err
    assert not marker.exists()
    code, _, err = run_main(capsys, "convert", evil, "-f", tmp_path / "out")
    assert code == 0, err
    assert not marker.exists()


def test_a_policy_pth_that_would_create_a_file_is_refused_unrun(zips, tmp_path, capsys):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"action_net.weight": torch.zeros(2, 64), "x": Touch(str(marker))}, buf)
    evil = rewrite(zips["ppo"], tmp_path / "ppo-CartPole-v1.zip", **{"policy.pth": buf.getvalue()})
    code, _, err = run_main(capsys, "evaluate", evil)
    assert code == 2
    assert "policy.pth is not a plain tensor file that loads safely" in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


# -- damaged and oversized files --------------------------------------------------------------------------------


def test_a_corrupt_zip_is_one_sentence(zips, tmp_path, capsys):
    raw = zips["ppo"].read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "not-a-zip": b"this is not a zip file at all",
        "flipped": raw[:200] + bytes(b ^ 0xFF for b in raw[200:400]) + raw[400:],  # inside a compressed member
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}-ppo-CartPole-v1.zip"
        path.write_bytes(content)
        code, out, err = run_main(capsys, "evaluate", path)
        assert code == 2, (name, err)
        assert err.startswith("deeprl: error: ") and len(err.strip().splitlines()) == 1, (name, err)
    not_json = rewrite(zips["ppo"], tmp_path / "nj-ppo-CartPole-v1.zip", data=b"\x80\x04not json")
    code, _, err = run_main(capsys, "evaluate", not_json)
    assert code == 2 and "'data' is not JSON" in err
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "hello")
    code, _, err = run_main(capsys, "evaluate", empty)
    assert code == 2 and "not a Stable-Baselines3 model file" in err


def test_a_huge_policy_pth_is_refused_by_size(zips, tmp_path, capsys):
    huge = tmp_path / "ppo-CartPole-v1.zip"  # 64 MiB and one byte of zeros, a few hundred KB compressed
    with zipfile.ZipFile(zips["ppo"]) as zin, zipfile.ZipFile(huge, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("data", zin.read("data"))
        z.writestr("policy.pth", bytes(sb3.MAX_POLICY_BYTES + 1))
    assert huge.stat().st_size < 1 << 20
    code, _, err = run_main(capsys, "evaluate", huge)
    assert code == 2
    assert "policy.pth (67,108,865 bytes) is over the 64 MiB limit" in err


# -- vec_normalize.pkl: VecNormalize's statistics through an unpickler that builds only inert records -------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """An RL-Zoo run folder: ppo/LunarLander-v2_1/LunarLander-v2.zip with LunarLander-v2/vec_normalize.pkl."""
    from stable_baselines3.common.vec_env import VecNormalize

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("zoo") / "ppo" / "LunarLander-v2_1"
    (run / "LunarLander-v2").mkdir(parents=True)
    venv = VecNormalize(make_vec_env("LunarLander-v3", n_envs=1), gamma=0.99)
    model = PPO("MlpPolicy", venv, n_steps=128, batch_size=64, n_epochs=2, seed=0)
    model.learn(256)
    model.save(run / "LunarLander-v2.zip")
    venv.save(run / "LunarLander-v2" / "vec_normalize.pkl")
    yield run
    torch.set_num_threads(threads)


def test_vec_normalize_statistics_give_sb3s_own_figures(zoo):
    from stable_baselines3.common.vec_env import VecNormalize

    model, theirs = PPO.load(zoo / "LunarLander-v2.zip"), []
    for s in range(5):
        venv = VecNormalize.load(zoo / "LunarLander-v2" / "vec_normalize.pkl", make_vec_env("LunarLander-v3", n_envs=1))
        venv.training, venv.norm_reward = False, False  # evaluation: frozen statistics, raw rewards
        venv.seed(s)
        episode, _ = evaluate_policy(model, venv, n_eval_episodes=1, deterministic=True, return_episode_rewards=True)
        theirs += episode
    agent = load_agent(zoo / "LunarLander-v2.zip")
    assert agent.config["source"]["vec_normalize"] == "vec_normalize.pkl"
    assert agent.config["policy"]["normalize"]["norm_obs"] is True
    ours = evaluate(agent, n_eval_episodes=5, seed=0)["episode_rewards"]
    assert [round(r, 6) for r in ours] == theirs
    config, tensors = sb3.to_deeprl(sb3.read_zip(zoo / "LunarLander-v2.zip"), "LunarLander-v2")
    config["policy"]["normalize"] = None  # the same weights without the statistics play differently
    from deeprl.algos import get_algo

    raw = evaluate(get_algo("ppo").load_agent(config, tensors), n_eval_episodes=5, seed=0)["episode_rewards"]
    assert raw != ours


def test_convert_keeps_the_statistics(zoo, tmp_path, capsys):
    code, _, err = run_main(capsys, "convert", zoo / "LunarLander-v2.zip", "-f", tmp_path / "m")
    assert code == 0, err
    from deeprl.modelio import load_model

    config, tensors = load_model(tmp_path / "m")
    assert {"normalize.obs.mean", "normalize.obs.var", "normalize.obs.count"} <= set(tensors)
    assert tensors["normalize.obs.mean"].shape == (8,)
    assert (
        evaluate(load_agent(tmp_path / "m"), n_eval_episodes=3)["episode_rewards"]
        == evaluate(load_agent(zoo / "LunarLander-v2.zip"), n_eval_episodes=3)["episode_rewards"]
    )


def test_a_vec_normalize_with_a_foreign_class_is_refused_unrun(zoo, tmp_path, capsys):
    from stable_baselines3.common.vec_env import VecNormalize

    marker = tmp_path / "pwned"
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "ppo-LunarLander-v2.zip").write_bytes((zoo / "LunarLander-v2.zip").read_bytes())
    stats = VecNormalize.load(zoo / "LunarLander-v2" / "vec_normalize.pkl", make_vec_env("LunarLander-v3"))
    stats.venv = None
    stats.extra = Touch(str(marker))  # SB3 would run it: open(marker, "w")
    (folder / "vec_normalize.pkl").write_bytes(pickle.dumps(stats))
    code, _, err = run_main(capsys, "evaluate", folder / "ppo-LunarLander-v2.zip")
    assert code == 2
    assert "asks to run 'io.open' when loaded; refused" in err
    assert not marker.exists()
    (folder / "vec_normalize.pkl").write_bytes(pickle.dumps({"not": "a VecNormalize"}))
    code, _, err = run_main(capsys, "evaluate", folder / "ppo-LunarLander-v2.zip")
    assert code == 2 and "does not hold an SB3 VecNormalize object" in err


def test_a2c_panda_with_vec_normalize_gives_sb3s_own_figures(tmp_path):
    """The course's Unit 6 model: A2C, MultiInputPolicy on Dict observations, VecNormalize statistics per key."""
    pytest.importorskip("panda_gym")
    from stable_baselines3.common.vec_env import VecNormalize

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        venv = VecNormalize(make_vec_env("PandaReachDense-v3", n_envs=1))
        model = A2C("MultiInputPolicy", venv, seed=0)
        model.learn(100)
        model.save(tmp_path / "a2c-PandaReachDense-v3.zip")  # a Hub repo's layout: the zip and the pkl side by side
        venv.save(tmp_path / "vec_normalize.pkl")
        theirs = []
        for s in range(3):
            env = VecNormalize.load(tmp_path / "vec_normalize.pkl", make_vec_env("PandaReachDense-v3", n_envs=1))
            env.training, env.norm_reward = False, False
            env.seed(s)
            episode, _ = evaluate_policy(model, env, n_eval_episodes=1, deterministic=True, return_episode_rewards=True)
            theirs += episode
            env.close()
        agent = load_agent(tmp_path / "a2c-PandaReachDense-v3.zip")
        assert (agent.config["algo"], agent.config["source"]["policy"]) == ("a2c", "MultiInputPolicy")
        assert agent.config["source"]["vec_normalize"] == "vec_normalize.pkl"
        ours = evaluate(agent, n_eval_episodes=3, seed=0)["episode_rewards"]
    finally:
        torch.set_num_threads(threads)
    assert [round(r, 6) for r in ours] == theirs


def test_a_folder_holding_one_sb3_zip_is_its_model(zoo, zips, tmp_path, capsys):
    """An RL-Zoo run folder (ppo/LunarLander-v2_1/) and a Hub repo folder evaluate as the zip inside them."""
    assert load_agent(zoo).config["source"]["file"] == "LunarLander-v2.zip"
    repo = tmp_path / "ppo-CartPole-v1"
    repo.mkdir()
    (repo / "ppo-CartPole-v1.zip").write_bytes(zips["ppo"].read_bytes())
    code, out, err = run_main(capsys, "evaluate", repo, "--json")
    assert code == 0, err
    assert json.loads(out)["episode_rewards"] == evaluate(load_agent(zips["ppo"]))["episode_rewards"]
    (repo / "other.zip").write_bytes(zips["dqn"].read_bytes())  # two models: which one is not guessed
    code, _, err = run_main(capsys, "evaluate", repo)
    assert code == 2 and "holds no model" in err


def test_record_plays_an_sb3_zip(zips, tmp_path, capsys):
    code, out, err = run_main(capsys, "record", zips["a2c"], "--out", tmp_path / "replay.mp4")
    assert code == 0, err
    assert (tmp_path / "replay.mp4").stat().st_size > 1000


@pytest.mark.slow
def test_cnn_policy_on_atari_gives_sb3s_own_figures(tmp_path):
    """PPO CnnPolicy on SpaceInvaders through SB3's make_atari_env + VecFrameStack against our Atari preprocessing,
    deterministic actions on both sides (the course samples on Atari; sampling cannot be compared draw by draw)."""
    ale_py = pytest.importorskip("ale_py")
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = PPO("CnnPolicy", VecFrameStack(make_atari_env("SpaceInvadersNoFrameskip-v4", seed=0), 4), seed=0)
        with torch.no_grad():  # an untrained policy's logits are near-ties; spread them apart
            for p in model.policy.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        model.save(tmp_path / "ppo-SpaceInvadersNoFrameskip-v4.zip")
        theirs = []
        for s in range(2):
            venv = VecFrameStack(make_atari_env("SpaceInvadersNoFrameskip-v4", n_envs=1), 4)
            venv.seed(s)
            episode, _ = evaluate_policy(
                model, venv, n_eval_episodes=1, deterministic=True, return_episode_rewards=True
            )
            theirs += episode
            venv.close()
        agent = load_agent(tmp_path / "ppo-SpaceInvadersNoFrameskip-v4.zip")
        assert agent.config["source"]["policy"] == "CnnPolicy"
        ours = evaluate(agent, n_eval_episodes=2, seed=0, deterministic=True)["episode_rewards"]
    finally:
        torch.set_num_threads(threads)
    assert ours == theirs
