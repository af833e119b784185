"""Issue 20 item 5: `deeprl export MODEL --onnx OUT.onnx` for every policy type (deeprl/onnx_export.py).

Each test makes a model the way a learner does (a few seconds of training, or for APPO, whose sampler starts
worker processes, a model built and saved in the format training writes), exports it, and plays 1,000
observations through deeprl's agent and through the file in onnxruntime: the actions must be the same (allclose
for continuous ones). The oracle below feeds the session itself, independently of the library's own `check`.
"""

import json

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from deeprl import onnx_export  # noqa: E402
from deeprl.agent import load_agent  # noqa: E402
from deeprl.cli import main  # noqa: E402
from deeprl.envs import make_env  # noqa: E402
from deeprl.modelio import save_model  # noqa: E402
from deeprl.policies import policy_tensors  # noqa: E402
from deeprl.policies.recurrent import RecurrentActorCritic  # noqa: E402
from deeprl.train import train  # noqa: E402

N = 1000


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks on a shared 2-core machine
    yield
    torch.set_num_threads(threads)


def tiny(tmp_path, algo, env, **overrides):
    run = train(algo, env, overrides=overrides, log_folder=tmp_path, show_progress=False, device="cpu")
    torch.set_num_threads(1)  # training sets its own count; one observation at a time runs fastest on one
    return run.run_dir


def observations(env_id, n=N, seed=0, env_kwargs=None):
    env = make_env(env_id, env_kwargs or {})
    space = env.observation_space
    env.close()
    space.seed(seed)
    return space, [space.sample() for _ in range(n)]


def export(agent, path, space):
    summary = onnx_export.export(agent, path, space)
    onnx.checker.check_model(str(path), full_check=True)
    return summary


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feed(sess, obs):
    """One batch for the session: a Dict observation is one input per key; anything else is `obs`, in rows of
    the input's own rank (SoccerTwos' team of two is two rows)."""
    inputs = sess.get_inputs()
    if isinstance(obs[0], dict):
        return {i.name: np.stack([o[i.name] for o in obs]) for i in inputs}
    x = np.stack([np.asarray(o) for o in obs])
    rank = len(inputs[0].shape)
    return {"obs": x.reshape(-1, *x.shape[x.ndim - rank + 1 :])}


def ours(agent, obs):
    if hasattr(agent, "reset"):
        agent.reset()
    return np.stack([np.asarray(agent.act(o, deterministic=True)) for o in obs])


def assert_same_actions(agent, path, obs, continuous=False, atol=1e-6):
    sess = session(path)
    theirs = sess.run(["action"], feed(sess, obs))[0]
    mine = ours(agent, obs)
    assert theirs.dtype == (np.float32 if continuous else np.int64)
    theirs = theirs.reshape(mine.shape)
    if continuous:
        np.testing.assert_allclose(theirs, mine, rtol=1e-5, atol=atol)
    else:
        assert (theirs == mine).all(), f"{(theirs != mine).sum()} of {len(mine)} actions differ"
    return sess, mine


def ports(summary, side):
    return {p["name"]: (p["dtype"], p["shape"]) for p in summary[side]}


# ----------------------------------------------------------------------------------------------------------
# One test per policy type


def test_qtable_is_a_gather_and_an_argmax(tmp_path):
    agent = load_agent(tiny(tmp_path, "qlearning", "Taxi-v3", n_training_episodes=300))
    space, obs = observations("Taxi-v3")
    summary = export(agent, tmp_path / "taxi.onnx", space)
    assert ports(summary, "inputs") == {"obs": ("int64", ["batch"])}
    assert ports(summary, "outputs")["q_values"] == ("float64", ["batch", 6])
    model = onnx.load(str(tmp_path / "taxi.onnx"))
    assert [n.op_type for n in model.graph.node] == ["Gather", "ArgMax"]
    # a short run leaves ties (unvisited states, untried actions), where the first action wins, as in numpy's argmax
    q = agent.qtable
    assert ((q == q.max(1, keepdims=True)).sum(1) > 1).sum() > 100
    sess, mine = assert_same_actions(agent, tmp_path / "taxi.onnx", obs)
    q = sess.run(["q_values"], {"obs": np.asarray(obs, np.int64)})[0]
    np.testing.assert_array_equal(q, agent.qtable[np.asarray(obs)])


def test_course_pickle_through_the_command_line(tmp_path, capsys):
    import pickle

    rng = np.random.default_rng(0)
    q = rng.integers(0, 3, (16, 4)).astype(np.float64)  # small integers: many ties
    model = {"env_id": "FrozenLake-v1", "map_name": "4x4", "slippery": False, "qtable": q}
    (tmp_path / "q-learning.pkl").write_bytes(pickle.dumps(model))
    out = tmp_path / "frozenlake.onnx"
    assert main(["export", str(tmp_path / "q-learning.pkl"), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Q-table, qlearning on FrozenLake-v1" in text and f"{N} of {N} actions equal" in text
    actions = session(out).run(["action"], {"obs": np.arange(16, dtype=np.int64)})[0]
    np.testing.assert_array_equal(actions, q.argmax(1))


def test_ppo_discrete_mlp_through_the_command_line(tmp_path, capsys):
    run_dir = tiny(tmp_path, "ppo", "CartPole-v1", n_timesteps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1)
    out = tmp_path / "cartpole.onnx"
    assert main(["export", str(run_dir), "--onnx", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["check"] == {"n": N, "equal": N, "max_abs_diff": 0.0}
    assert ports(summary, "outputs") == {
        "action": ("int64", ["batch"]),
        "logits": ("float32", ["batch", 2]),
        "value": ("float32", ["batch"]),
    }
    agent = load_agent(run_dir)
    _, obs = observations("CartPole-v1", seed=1)
    sess, _ = assert_same_actions(agent, out, obs)
    logits, value = sess.run(["logits", "value"], {"obs": np.stack(obs[:8])})
    with torch.no_grad():
        dist, v = agent.policy(torch.as_tensor(np.stack(obs[:8])))
    np.testing.assert_allclose(logits, dist.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value, v.numpy(), rtol=1e-5, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["algo"] == "ppo" and meta["env_id"] == "CartPole-v1"


def test_a2c_panda_dict_observations_with_vecnormalize_inside_the_graph(tmp_path):
    run_dir = tiny(tmp_path, "a2c", "PandaReachDense-v3", n_timesteps=32, n_envs=1, n_steps=8, normalize=True)
    agent = load_agent(run_dir)
    stats = agent.normalizer.obs_rms
    assert set(stats) == {"observation", "achieved_goal", "desired_goal"}
    assert all(np.abs(rms.mean).max() > 1e-3 for rms in stats.values())  # real statistics, not the identity
    # a policy whose means leave the action box, so that the graph's clipping is what the agent's np.clip does
    with torch.no_grad():
        agent.policy.action_head.weight.mul_(300.0)
    space, obs = observations("PandaReachDense-v3")
    summary = export(agent, tmp_path / "panda.onnx", space)
    assert ports(summary, "inputs") == {
        "achieved_goal": ("float32", ["batch", 3]),
        "desired_goal": ("float32", ["batch", 3]),
        "observation": ("float32", ["batch", 6]),
    }
    # (weights 300 times larger make float32 sums in another order differ by 300 times more: 1e-5, not 1e-7)
    sess, mine = assert_same_actions(agent, tmp_path / "panda.onnx", obs, continuous=True, atol=1e-4)
    assert (np.abs(mine) == 1.0).mean() > 0.1  # clipped actions are among those compared
    mean = sess.run(["mean"], feed(sess, obs))[0]
    assert np.abs(mean).max() > 1.0  # the unclipped mean is there too


def test_ppo_multidiscrete_branches(tmp_path):
    run_dir = tiny(tmp_path, "ppo", "SnowballTarget", n_timesteps=128, n_envs=2, n_steps=64, batch_size=64, n_epochs=1)
    agent = load_agent(run_dir)
    space, obs = observations("SnowballTarget")
    summary = export(agent, tmp_path / "snowball.onnx", space)
    assert ports(summary, "outputs")["action"] == ("int64", ["batch", 2])
    assert_same_actions(agent, tmp_path / "snowball.onnx", obs)


def test_reinforce_policy(tmp_path):
    agent = load_agent(tiny(tmp_path, "reinforce", "Pixelcopter-PLE-v0", n_training_episodes=2))
    space, obs = observations("Pixelcopter-PLE-v0")
    export(agent, tmp_path / "copter.onnx", space)
    assert_same_actions(agent, tmp_path / "copter.onnx", obs)


def test_dqn_mlp_q_network(tmp_path):
    agent = load_agent(tiny(tmp_path, "dqn", "CartPole-v1", n_timesteps=200, learning_starts=50, buffer_size=500))
    space, obs = observations("CartPole-v1")
    summary = export(agent, tmp_path / "dqn.onnx", space)
    assert ports(summary, "outputs")["q_values"] == ("float32", ["batch", 2])
    sess, _ = assert_same_actions(agent, tmp_path / "dqn.onnx", obs)
    q = sess.run(["q_values"], {"obs": np.stack(obs[:8])})[0]
    with torch.no_grad():
        np.testing.assert_allclose(q, agent.q(torch.as_tensor(np.stack(obs[:8]))).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_atari_cnn_policies_read_uint8_frames(tmp_path, algo):
    extra = {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1} if algo == "ppo" else {"buffer_size": 500}
    run_dir = tiny(tmp_path, algo, "SpaceInvadersNoFrameskip-v4", n_timesteps=64, **extra)
    agent = load_agent(run_dir)
    space, obs = observations("SpaceInvadersNoFrameskip-v4")
    summary = export(agent, tmp_path / "atari.onnx", space)
    assert ports(summary, "inputs") == {"obs": ("uint8", ["batch", 4, 84, 84])}  # the /255 is inside
    assert "CNN" in summary["kind"]
    assert_same_actions(agent, tmp_path / "atari.onnx", obs)


def test_selfplay_soccer_player_policy(tmp_path):
    run_dir = tiny(tmp_path, "selfplay", "SoccerTwos", n_timesteps=128, n_envs=2, n_steps=32, batch_size=64, n_epochs=1)
    agent = load_agent(run_dir)
    space, obs = observations("SoccerTwos")  # a team's observation: (2, 336), one row a player
    summary = export(agent, tmp_path / "soccer.onnx", space)
    assert ports(summary, "inputs") == {"obs": ("float32", ["batch", 336])}
    assert ports(summary, "outputs")["action"] == ("int64", ["batch", 3])
    assert_same_actions(agent, tmp_path / "soccer.onnx", obs)


def appo_model(folder, env_id, obs_shape, n_actions, frame_skip, **kwargs):
    """An APPO model folder as training writes it (config['policy'] = {'recurrent', 'frame_skip'}, the weights and
    normalization buffers as 'policy.*'), with random input and return statistics."""
    torch.manual_seed(0)
    model = RecurrentActorCritic(obs_shape, n_actions, **kwargs)
    with torch.no_grad():
        model.obs_norm.mean.uniform_(-0.5, 0.5)
        model.obs_norm.var.uniform_(0.2, 3.0)
        model.returns_norm.mean.fill_(3.0)
        model.returns_norm.var.fill_(4.0)
    config = {
        "algo": "appo",
        "env_id": env_id,
        "env_kwargs": {},
        "env_tag": env_id,
        "seed": 0,
        "hyperparams": {},
        "policy": {"recurrent": model.config(), "frame_skip": frame_skip},
    }
    save_model(folder, policy_tensors(model), config)
    return folder


def play_recurrent(sess, obs, repeat):
    """The file played as RecurrentAgent plays: a decision every `repeat` observations, the state carried."""
    h = np.zeros((1, sess.get_inputs()[1].shape[1]), np.float32)
    actions = []
    for i, o in enumerate(obs):
        if i % repeat == 0:
            (a,), h = sess.run(["action", "h_out"], {"obs": np.asarray(o)[None], "h_in": h})
        actions.append(a)
    return np.asarray(actions)


def test_appo_gru_vector_policy_carries_its_state(tmp_path):
    folder = appo_model(tmp_path / "m", "CartPole-v1", (4,), 2, 1, mlp_layers=[32, 32], rnn_size=16)
    agent = load_agent(folder)
    space, obs = observations("CartPole-v1")
    summary = export(agent, tmp_path / "appo.onnx", space)
    assert ports(summary, "inputs") == {"obs": ("float32", ["batch", 4]), "h_in": ("float32", ["batch", 16])}
    sess = session(tmp_path / "appo.onnx")
    mine = ours(agent, obs)
    np.testing.assert_array_equal(play_recurrent(sess, obs, 1), mine)
    # the state matters: the same observations from a zero state at every step give other actions somewhere
    stateless = sess.run(["action"], {"obs": np.stack(obs), "h_in": np.zeros((N, 16), np.float32)})[0]
    assert (stateless != mine).any()
    # the value comes out in return units (the return statistics are inside)
    agent.reset()
    with torch.no_grad():
        _, v, _ = agent.model.step(torch.as_tensor(obs[0])[None], agent.model.initial_state(1))
        want = agent.model.denormalize(v).numpy()
    got = sess.run(["value"], {"obs": obs[0][None], "h_in": np.zeros((1, 16), np.float32)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_appo_without_a_gru_has_no_state(tmp_path):
    folder = appo_model(tmp_path / "m", "CartPole-v1", (4,), 2, 1, mlp_layers=[32], rnn_size=0)
    agent = load_agent(folder)
    space, obs = observations("CartPole-v1")
    summary = export(agent, tmp_path / "appo.onnx", space)
    assert list(ports(summary, "inputs")) == ["obs"] and "h_out" not in ports(summary, "outputs")
    assert_same_actions(agent, tmp_path / "appo.onnx", obs)


def test_appo_doom_convnet_holds_each_action_for_the_trained_frame_skip(tmp_path):
    env_id = "doom_health_gathering_supreme"
    space, obs = observations(env_id)
    folder = appo_model(tmp_path / "m", env_id, space.shape, 5, 4, rnn_size=32, obs_scale=255.0)
    agent = load_agent(folder)
    assert agent.action_repeat == 4  # trained at frame skip 4, played at 1
    summary = export(agent, tmp_path / "doom.onnx", space)
    assert summary["metadata"]["action_repeat"] == "4"
    assert ports(summary, "inputs")["obs"] == ("uint8", ["batch", 72, 128, 3])
    np.testing.assert_array_equal(play_recurrent(session(tmp_path / "doom.onnx"), obs, 4), ours(agent, obs))


def test_sb3_zip_exports_like_a_deeprl_model(tmp_path, capsys):
    sb3 = pytest.importorskip("stable_baselines3")
    model = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(64)
    model.save(tmp_path / "ppo-CartPole-v1.zip")
    out = tmp_path / "sb3.onnx"
    assert main(["export", str(tmp_path / "ppo-CartPole-v1.zip"), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"onnxruntime: {N} of {N} actions equal deeprl's" in text
    _, obs = observations("CartPole-v1", n=200)
    sess = session(out)
    theirs = sess.run(["action"], {"obs": np.stack(obs)})[0]
    np.testing.assert_array_equal(theirs, [model.predict(o, deterministic=True)[0] for o in obs])


# ----------------------------------------------------------------------------------------------------------
# Mistakes


def test_a_wrong_model_path_is_one_sentence(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nothing-here"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("deeprl: error:") and "nothing-here" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_a_folder_as_the_output_is_refused(tmp_path, capsys):
    assert main(["export", "whatever/model", "--onnx", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
