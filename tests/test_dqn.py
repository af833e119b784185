"""DQN: replay buffer episode boundaries, epsilon schedule, target sync, the course's dqn.yml, a CartPole run."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from deeprl.algos import dqn
from deeprl.buffers import FrameReplayBuffer, ReplayBuffer
from deeprl.errors import UserError

COURSE_YML = Path(__file__).parent / "data" / "dqn.yml"


# -- replay buffer -------------------------------------------------------------------------------------------------


def _frame(ep, t):
    f = np.zeros((2, 2), np.uint8)
    f[0, 0], f[0, 1] = ep % 256, min(t, 255)
    return f


def _fill(buffer, n_envs, steps, seed, p_term=0.1, p_trunc=0.05):
    """Feed episodes whose frames say (episode id, step) to a buffer, as a FrameStackObservation env would."""
    rng = np.random.default_rng(seed)
    eps = list(range(0, 100 * n_envs, 100))
    t = [0] * n_envs
    stacks = [[_frame(e, 0)] * 4 for e in eps]
    for step in range(steps):
        obs = np.stack([np.stack(s) for s in stacks])
        term = rng.random(n_envs) < p_term
        trunc = (rng.random(n_envs) < p_trunc) & ~term
        nxt = []
        for i in range(n_envs):
            t[i] += 1
            nxt.append(stacks[i][1:] + [_frame(eps[i], t[i])])
        buffer.add(obs, np.full(n_envs, step), np.ones(n_envs), np.stack([np.stack(s) for s in nxt]), term, trunc)
        for i in range(n_envs):
            if term[i] or trunc[i]:
                eps[i] += 1
                t[i] = 0
                stacks[i] = [_frame(eps[i], 0)] * 4
            else:
                stacks[i] = nxt[i]


@pytest.mark.parametrize("n_envs,steps", [(1, 30), (2, 200), (3, 1000)])
def test_frame_buffer_never_mixes_episodes(n_envs, steps):
    b = FrameReplayBuffer(60, n_envs, (4, 2, 2))
    _fill(b, n_envs, steps, seed=n_envs)
    d = b.sample(4000, np.random.default_rng(0))
    ep, t = d["obs"][:, :, 0, 0].astype(int), d["obs"][:, :, 0, 1].astype(int)
    nep, nt = d["next_obs"][:, :, 0, 0].astype(int), d["next_obs"][:, :, 0, 1].astype(int)
    assert (ep == ep[:, -1:]).all()  # one episode per stacked observation
    # consecutive steps, padded at the start with the episode's first frame (step 0), as the env's stack at reset
    step = np.diff(t, axis=1)
    assert ((step == 1) | ((step == 0) & (t[:, :-1] == 0))).all()
    assert (t[:, -1] - t[:, 0] == np.minimum(t[:, -1], 3)).all()
    go_on = ~d["terminated"]
    assert (nep[go_on] == ep[go_on][:, -1:]).all() and (nt[go_on][:, -1] == t[go_on][:, -1] + 1).all()
    assert (d["next_obs"][:, :-1] == d["obs"][:, 1:]).all()


def test_frame_buffer_stores_each_frame_once():
    b = FrameReplayBuffer(100_000, 1, (4, 84, 84))
    assert b.frames.nbytes == 100_000 * 84 * 84
    total = sum(a.nbytes for a in b.arrays().values())
    assert total < 0.75e9


def test_buffer_save_and_load_roundtrip(tmp_path):
    b = FrameReplayBuffer(40, 2, (4, 2, 2))
    _fill(b, 2, 100, seed=3, p_trunc=0.2)
    b.save(tmp_path / "rb.safetensors")
    b2 = FrameReplayBuffer(40, 2, (4, 2, 2))
    b2.load(tmp_path / "rb.safetensors")
    assert b2.pos == b.pos and b2.full == b.full and b2.final.keys() == b.final.keys()
    d1, d2 = b.sample(50, np.random.default_rng(1)), b2.sample(50, np.random.default_rng(1))
    assert all((d1[k] == d2[k]).all() for k in d1)
    with pytest.raises(UserError):
        FrameReplayBuffer(80, 2, (4, 2, 2)).load(tmp_path / "rb.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00junk!")
    with pytest.raises(UserError):
        b2.load(tmp_path / "bad.safetensors")


def test_vector_buffer_keeps_true_next_obs():
    b = ReplayBuffer(10, 2, (3,))
    for i in range(12):
        b.add(
            np.full((2, 3), i),
            np.array([0, 1]),
            np.zeros(2),
            np.full((2, 3), i + 0.5),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
    d = b.sample(20, np.random.default_rng(0))
    assert (d["next_obs"] - d["obs"] == 0.5).all() and len(b) == 10


# -- schedule, network, hyperparameters ----------------------------------------------------------------------------


def test_epsilon_schedule_is_sb3_linear():
    hp = dqn.Settings(
        n_timesteps=1000, exploration_fraction=0.1, exploration_initial_eps=1.0, exploration_final_eps=0.01
    )
    assert dqn.epsilon(0, hp) == 1.0
    assert dqn.epsilon(50, hp) == pytest.approx(0.505)
    assert dqn.epsilon(100, hp) == pytest.approx(0.01)
    assert dqn.epsilon(900, hp) == 0.01


def test_target_network_sync_and_dueling_head():
    import torch

    policy = {"kind": "mlp", "obs_shape": [4], "n_actions": 3, "net_arch": [8], "dueling": True}
    q, target = dqn.build_qnet(policy), dqn.build_qnet(policy)
    x = torch.randn(5, 4)
    assert not torch.allclose(q(x), target(x))
    target.load_state_dict(q.state_dict())
    assert torch.equal(q(x), target(x))
    cnn = dqn.build_qnet({"kind": "cnn", "obs_shape": [4, 84, 84], "n_actions": 6, "net_arch": [], "dueling": False})
    assert cnn(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)


def test_course_dqn_yml_parses():
    from deeprl.train import merge_hyperparams

    hp = merge_hyperparams(
        "dqn", dqn, "SpaceInvadersNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4", str(COURSE_YML), {}, None
    )
    assert hp["n_timesteps"] == 10_000_000 and isinstance(hp["n_timesteps"], int)
    assert hp["buffer_size"] == 100_000 and hp["learning_rate"] == 1e-4 and hp["exploration_final_eps"] == 0.01
    checked = dqn.check_hyperparams(hp, is_atari=True)
    assert checked.train_freq == 4 and checked.learning_starts == 100_000
    # the CNN's update takes every core unless the file or the user says otherwise; an MLP's runs on one
    assert checked.torch_threads == len(os.sched_getaffinity(0))
    assert dqn.check_hyperparams(dict(hp, torch_threads=1), is_atari=True).torch_threads == 1
    assert dqn.check_hyperparams(dict(dqn.DEFAULTS), is_atari=False).torch_threads == 1
    with pytest.raises(UserError, match="for Atari games"):
        dqn.check_hyperparams(hp, is_atari=False)
    with pytest.raises(UserError, match="not a hyperparameter"):
        merge_hyperparams("dqn", dqn, "CartPole-v1", "CartPole-v1", None, {"exploraton_fraction": 0.1}, None)


def test_rl_zoo_policy_kwargs_and_train_freq_forms():
    hp = dict(dqn.DEFAULTS, policy_kwargs="dict(net_arch=[256, 256])", train_freq=[4, "step"], learning_rate="lin_1e-3")
    checked = dqn.check_hyperparams(hp, is_atari=False)
    assert checked.net_arch == [256, 256] and checked.train_freq == 4
    assert dqn.learning_rate_at(checked.learning_rate, 0.5) == pytest.approx(5e-4)
    with pytest.raises(UserError):
        dqn.check_hyperparams(dict(hp, policy_kwargs="__import__('os').system('true')"), is_atari=False)


# -- training ------------------------------------------------------------------------------------------------------

# RL-Zoo's CartPole settings, shrunk: 8k steps and 3.7k updates of a small MLP
FAST = [
    "n_timesteps:8000",
    "learning_starts:500",
    "train_freq:64",
    "gradient_steps:32",
    "batch_size:64",
    "learning_rate:2.3e-3",
    "target_update_interval:10",
    "exploration_fraction:0.2",
    "exploration_final_eps:0.04",
    "net_arch:[64,64]",
    "buffer_size:10000",
]


def _train(tmp_path, extra=(), resume=False, seed=3):
    from deeprl.train import parse_overrides, train

    return train(
        "dqn",
        "CartPole-v1",
        overrides=parse_overrides(FAST + list(extra)),
        seed=seed,
        log_folder=tmp_path,
        resume=resume,
        device="cpu",
        show_progress=False,
    )


@pytest.mark.slow
def test_short_cartpole_run_improves_and_loads(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    run = _train(tmp_path)
    agent = load_agent(run.run_dir)
    trained = evaluate(agent, n_eval_episodes=5)["mean_reward"]
    untrained = dqn.load_agent(
        agent.config, {f"q.{k}": v.detach().numpy() for k, v in dqn.build_qnet(agent.policy).state_dict().items()}
    )
    before = evaluate(untrained, n_eval_episodes=5)["mean_reward"]
    assert trained > max(2 * before, 60), (trained, before)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["hyperparams"]["batch_size"] == 64 and config["trained"]["timesteps"] == 8000
    lines = (run.run_dir / "episodes.csv").read_text().splitlines()
    assert lines[0] == "timesteps,return,length,seconds" and len(lines) > 10


def test_same_seed_same_weights_and_replay_buffer_resume(tmp_path):
    from deeprl.modelio import read_tensors

    extra = ["n_timesteps:1500", "checkpoint_freq:1000"]
    a = _train(tmp_path / "a", extra + ["save_replay_buffer:true"])
    b = _train(tmp_path / "b", extra)
    wa, _ = read_tensors(a.run_dir / "model.safetensors")
    wb, _ = read_tensors(b.run_dir / "model.safetensors")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert (a.run_dir / dqn.REPLAY_FILE).exists() and not (b.run_dir / dqn.REPLAY_FILE).exists()
    from deeprl.train import train

    resumed = train(
        "dqn",
        "CartPole-v1",
        seed=3,
        log_folder=tmp_path / "a",
        resume=True,
        n_timesteps=2000,
        device="cpu",
        show_progress=False,
    )
    assert resumed.run_dir == a.run_dir
    config = json.loads((a.run_dir / "config.json").read_text())
    assert config["trained"]["timesteps"] == 2000


def test_ctrl_c_saves_checkpoint_and_buffer_then_resume_continues(tmp_path, monkeypatch):
    from deeprl.checkpoint import load_checkpoint
    from deeprl.train import train

    real, calls = dqn.epsilon, {"n": 0}

    def interrupt_at_800(step, hp):
        calls["n"] += 1
        if step >= 800:
            raise KeyboardInterrupt
        return real(step, hp)

    monkeypatch.setattr(dqn, "epsilon", interrupt_at_800)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, ["n_timesteps:1500", "save_replay_buffer:true"])
    run_dir = next((tmp_path / "dqn").iterdir())
    _, state = load_checkpoint(run_dir)
    assert state["timesteps"] == 800 and state["updates"] > 0
    saved = ReplayBuffer(10000, 1, (4,))
    saved.load(run_dir / dqn.REPLAY_FILE)
    assert len(saved) == 800
    monkeypatch.setattr(dqn, "epsilon", real)
    train("dqn", "CartPole-v1", seed=3, log_folder=tmp_path, resume=True, device="cpu", show_progress=False)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["trained"]["timesteps"] == 1500


def test_evaluations_and_curve_survive_a_crash_and_resume(tmp_path, monkeypatch):
    """A run killed without a final checkpoint resumes from its last one: the episodes and evaluations logged after
    that checkpoint are logged again by the resumed run, not twice, and its time axis goes on."""
    from deeprl.train import train

    real = dqn.epsilon

    def crash_at_1100(step, hp):
        if step >= 1100:
            raise RuntimeError("killed")
        return real(step, hp)

    monkeypatch.setattr(dqn, "epsilon", crash_at_1100)
    extra = ["n_timesteps:1500", "checkpoint_freq:600", "eval_freq:500", "n_eval_episodes:2"]
    with pytest.raises(RuntimeError):
        _train(tmp_path, extra)
    run_dir = next((tmp_path / "dqn").iterdir())
    evals = lambda: [int(r.split(",")[0]) for r in (run_dir / "evaluations.csv").read_text().splitlines()[1:]]  # noqa
    episodes = lambda: [int(r.split(",")[0]) for r in (run_dir / "episodes.csv").read_text().splitlines()[1:]]  # noqa
    assert evals() == [500, 1000] and max(episodes()) > 600
    monkeypatch.setattr(dqn, "epsilon", real)
    train("dqn", "CartPole-v1", seed=3, log_folder=tmp_path, resume=True, device="cpu", show_progress=False)
    assert evals() == [500, 1000, 1500]
    steps = episodes()
    assert steps == sorted(steps) and len(steps) == len(set(steps))
    seconds = [float(r.split(",")[3]) for r in (run_dir / "episodes.csv").read_text().splitlines()[1:]]
    assert seconds == sorted(seconds)


def test_sb3_order_target_syncs_before_the_update_of_the_same_step(tmp_path):
    # SB3 syncs in the env step's _on_step, before the train() ending that rollout: with both due every 4 steps the
    # target holds the weights from before the last update, never the final ones
    from deeprl.checkpoint import load_checkpoint

    run = _train(tmp_path, ["n_timesteps:600", "train_freq:4", "gradient_steps:1", "target_update_interval:4"])
    tensors, state = load_checkpoint(run.run_dir)
    assert state["updates"] > 0
    names = [k[2:] for k in tensors if k.startswith("q.")]
    assert any(not np.array_equal(tensors[f"q.{k}"], tensors[f"target.{k}"]) for k in names)


def test_uniform_actions_before_learning_starts(tmp_path, monkeypatch):
    # SB3 samples the action space until learning_starts whatever epsilon is: the Q-network is never asked
    calls = {"n": 0}
    real = dqn.build_qnet

    def counting(policy):
        net = real(policy)
        net.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
        return net

    monkeypatch.setattr(dqn, "build_qnet", counting)
    monkeypatch.setattr(dqn, "epsilon", lambda step, hp: 0.0)
    _train(tmp_path, ["n_timesteps:300", "learning_starts:300"])
    assert calls["n"] == 0


def test_a_batch_drawn_ahead_is_drawn_over_what_the_buffer_will_hold():
    # the next train's batch is drawn right after a train: the same numbers as drawing it then, from then's range
    buf = FrameReplayBuffer(60, 1, (4, 2, 2))
    _fill(buf, 1, 200, seed=1)
    for ahead in (1, 4, 9):
        r1, e1 = buf.draw(8, np.random.default_rng(ahead), ahead=0)
        r2, e2 = buf.draw(8, np.random.default_rng(ahead))
        assert np.array_equal(r1, r2) and np.array_equal(e1, e2)
    small = FrameReplayBuffer(100, 1, (4, 2, 2))
    _fill(small, 1, 10, seed=2)
    assert small.draw(1000, np.random.default_rng(0), ahead=4)[0].max() == 13
