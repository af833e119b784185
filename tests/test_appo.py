"""APPO (deeprl.algos.appo) and its sampler (deeprl.sampler): shared memory between processes, the GRU's resets,
V-trace by hand, weights from the learner to the actors, workers that die, Ctrl-C, and the sampler on CartPole and
LunarLander (issue 16). Doom's own workflow is in test_doom.py's APPO tests."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deeprl.algos.appo import Settings, appo_loss, gae, vtrace
from deeprl.policies.recurrent import RecurrentActorCritic
from deeprl.sampler import Sampler, SharedArrays, Trajectories, WeightChannel, views
from proc_helpers import left_behind, start_training, wait_for_checkpoint

CARTPOLE_SMALL = [
    "num_workers:2",
    "num_envs_per_worker:2",
    "rollout:16",
    "batch_size:64",
    "checkpoint_seconds:0.2",
]


def _fill(raw: object, layout: dict, value: int) -> None:  # runs in a spawned child
    arrays = views(raw, layout)
    arrays["a"][:] = np.arange(arrays["a"].size).reshape(arrays["a"].shape) * value
    arrays["b"][0] = value + 0.5


def test_shared_arrays_round_trip_between_processes():
    shared = SharedArrays({"a": ((3, 4), np.int64), "b": ((2,), np.float32)})
    process = mp.get_context("spawn").Process(target=_fill, args=(shared.raw, shared.layout, 7))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert shared["a"].tolist() == (np.arange(12).reshape(3, 4) * 7).tolist()
    assert shared["b"][0] == pytest.approx(7.5)
    assert shared["b"][1] == 0.0


def _pull(channel: WeightChannel, queue: mp.Queue) -> None:  # runs in a spawned child
    version, state = channel.pull(-1)
    queue.put((version, {k: v.tolist() for k, v in (state or {}).items()}))


def test_published_weights_reach_another_process():
    model = RecurrentActorCritic((4,), 2, mlp_layers=[8], rnn_size=4)
    channel = WeightChannel(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    channel.publish(model.state_dict(), 3)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_pull, args=(channel, queue))
    process.start()
    version, state = queue.get(timeout=60)
    process.join(60)
    assert version == 3
    for k, v in model.state_dict().items():
        assert np.allclose(np.asarray(state[k]), v.numpy()), k
    assert channel.pull(3) == (3, None)  # nothing newer


def test_sampler_steps_real_envs_in_worker_processes():
    """The trainer's actions reach the workers and their observations come back through shared memory, the same
    as CartPole's stepped here with the same seeds."""
    import gymnasium as gym

    sampler = Sampler("CartPole-v1", {}, (4,), np.float32, n_workers=2, envs_per_worker=2, splits=2, seed=11)
    try:
        seen: dict[int, np.ndarray] = {}
        deadline = time.monotonic() + 60
        while len(seen) < 4 and time.monotonic() < deadline:
            for group in sampler.ready(timeout=1.0):
                for e in range(group.start, group.stop):
                    seen[e] = sampler.arrays["obs"][e].copy()
        assert sorted(seen) == [0, 1, 2, 3]
        for e in range(4):  # env e's first observation: reset(seed=seed + e)
            assert np.allclose(seen[e], gym.make("CartPole-v1").reset(seed=11 + e)[0])
        group = sampler.groups[0]
        sampler.arrays["actions"][group.start : group.stop] = 1
        sampler.step([group])
        assert sampler.ready_one(group, timeout=30)
        env = gym.make("CartPole-v1")
        env.reset(seed=11)
        assert np.allclose(sampler.arrays["obs"][0], env.step(1)[0])
        assert sampler.arrays["rewards"][0] == 1.0
        assert len(sampler.pids()) == 2
    finally:
        pids = sampler.pids()
        sampler.close()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_gru_state_is_reset_at_episode_ends():
    torch.manual_seed(0)
    model = RecurrentActorCritic((3,), 2, mlp_layers=[8], rnn_size=6, normalize_input=False)
    obs = torch.randn(1, 6, 3)
    h0 = torch.randn(1, 6)
    dones = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0]])  # the episode ends after step 2
    logits, values = model.unroll(obs, h0, dones)
    fresh_logits, fresh_values = model.unroll(obs[:, 3:], torch.zeros(1, 6), torch.zeros(1, 2))
    assert torch.allclose(logits[:, 3:], fresh_logits, atol=1e-6)
    assert torch.allclose(values[:, 3:], fresh_values, atol=1e-6)
    carried, _ = model.unroll(obs, h0, torch.zeros(1, 5))
    assert not torch.allclose(carried[:, 3:], fresh_logits, atol=1e-4)  # without the end the state carries on


def test_vtrace_against_a_hand_computation():
    gamma = 0.9
    r = torch.tensor([[1.0, 0.0, 2.0]])
    v = torch.tensor([[0.5, 1.0, -1.0, 3.0]])  # V(x_0..x_3); x_3 bootstraps
    d = torch.tensor([[0.0, 0.0, 0.0]])
    log_rho = torch.log(torch.tensor([[0.5, 2.0, 0.8]]))
    rho = np.minimum(1.0, [0.5, 2.0, 0.8])  # rho_bar = c_bar = 1
    c = rho
    delta = [rho[t] * (r[0, t].item() + gamma * v[0, t + 1].item() - v[0, t].item()) for t in range(3)]
    v2 = v[0, 2].item() + delta[2]
    v1 = v[0, 1].item() + delta[1] + gamma * c[1] * (v2 - v[0, 2].item())
    v0 = v[0, 0].item() + delta[0] + gamma * c[0] * (v1 - v[0, 1].item())
    adv = [rho[0] * (1.0 + gamma * v1 - 0.5), rho[1] * (0.0 + gamma * v2 - 1.0), rho[2] * (2.0 + gamma * 3.0 + 1.0)]
    vs, pg = vtrace(r, v, d, log_rho, gamma)
    assert vs[0].tolist() == pytest.approx([v0, v1, v2], abs=1e-5)
    assert pg[0].tolist() == pytest.approx(adv, abs=1e-5)
    # an episode end cuts the bootstrap
    vs_end, _ = vtrace(r, v, torch.tensor([[0.0, 0.0, 1.0]]), log_rho, gamma)
    assert vs_end[0, 2].item() == pytest.approx(v[0, 2].item() + rho[2] * (2.0 + 1.0))
    # on-policy, V-trace's targets are the lambda=1 returns
    vs_on, _ = vtrace(r, v, d, torch.zeros(1, 3), gamma)
    _, returns = gae(r, v, d, gamma, 1.0)
    assert torch.allclose(vs_on, returns, atol=1e-5)


def test_trajectories_hand_over_rollouts_with_their_bootstrap():
    pool = Trajectories(n_envs=2, rollout=2, obs_shape=(1,), obs_dtype=np.float32, hidden=3, capacity=2)
    envs = np.array([0, 1])
    for t in range(3):  # steps 0 and 1, then the bootstrap observation
        if t:
            pool.outcome(envs, np.array([t, 10 * t], np.float32), np.array([False, t == 2]), np.array([True, True]))
        obs = np.array([[t], [10 + t]], np.float32)
        h = np.full((2, 3), t, np.float32)
        assert pool.record(envs, obs, h, np.array([t, t]), np.zeros(2), np.array([t, -t], np.float32), version=5 + t)
    assert pool.ready() == 2
    batch = pool.take(2)
    assert batch["obs"][:, :, 0].tolist() == [[0, 1, 2], [10, 11, 12]]
    assert batch["values"].tolist() == [[0, 1, 2], [0, -1, -2]]
    assert batch["rewards"].tolist() == [[1, 2], [10, 20]]
    assert batch["dones"].tolist() == [[0, 0], [0, 1]]
    assert batch["versions"].tolist() == [[5, 6], [5, 6]]
    assert batch["h0"].tolist() == [[0, 0, 0], [0, 0, 0]]  # the state before step 0
    assert sorted(pool.free) == [0, 1]  # given back


def test_learner_batch_reports_the_policy_lag():
    torch.manual_seed(0)
    hp = Settings(rollout=4, batch_size=8, rnn_size=4, encoder_mlp_layers=[8])
    model = RecurrentActorCritic((3,), 2, mlp_layers=[8], rnn_size=4)
    B, T = 2, 4
    batch = {
        "obs": torch.randn(B, T + 1, 3),
        "h0": torch.zeros(B, 4),
        "dones": torch.zeros(B, T),
        "actions": torch.randint(0, 2, (B, T)),
        "log_probs": torch.full((B, T), float(np.log(0.5))),
        "values": torch.zeros(B, T + 1),
        "rewards": torch.ones(B, T),
        "versions": torch.tensor([[7, 7, 8, 8], [9, 9, 9, 9]]),
    }
    loss, stats = appo_loss(model, batch, hp, version=10)
    assert stats["policy_lag"] == pytest.approx(np.mean([3, 3, 2, 2, 1, 1, 1, 1]))
    assert stats["policy_lag_max"] == 3
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # steps acted by a policy more than max_policy_lag versions old are left out of the loss
    _, strict = appo_loss(model, batch, Settings(rollout=4, batch_size=8, max_policy_lag=0), version=10)
    assert strict["policy_loss"] == 0.0 and strict["value_loss"] == 0.0
    assert stats["value_loss"] > 0.0


def _train(
    tmp_path: Path, env: str, n: int, *extra: str, seed: int = 1, timeout: int = 300
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deeprl", "train", "--algo", "appo", "--env", env, "-f", str(tmp_path), "--seed"]
    cmd += [str(seed), "-n", str(n), "--quiet"]
    if extra:
        cmd += ["--hyperparams", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_cartpole_learns_and_lock_step_runs_repeat(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.modelio import load_model

    sync = [*CARTPOLE_SMALL, "async_rl:false"]
    for name in ("a", "b"):
        proc = _train(tmp_path / name, "CartPole-v1", 30_000, *sync)
        assert proc.returncode == 0, proc.stderr
    run_a, run_b = (tmp_path / n / "appo" / "CartPole-v1_1" for n in ("a", "b"))
    (_, ta), (_, tb) = load_model(run_a), load_model(run_b)
    assert ta.keys() == tb.keys()
    assert all(np.array_equal(ta[k], tb[k]) for k in ta)  # lock-step: the same seed, the same run
    result = evaluate(load_agent(run_a))
    assert result["mean_reward"] > 100  # random play scores about 22
    config = json.loads((run_a / "config.json").read_text())
    assert config["trained"]["policy_versions"] > 100


def test_lunarlander_runs_on_the_same_sampler_and_resumes(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate

    proc = _train(tmp_path, "LunarLander-v2", 3_000, *CARTPOLE_SMALL)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "appo" / "LunarLander-v2_1"
    first = json.loads((run / "config.json").read_text())["trained"]
    assert first["env_frames"] >= 3_000
    cmd = [sys.executable, "-m", "deeprl", "train", "--algo", "appo", "--env", "LunarLander-v2", "-f", str(tmp_path)]
    proc = subprocess.run([*cmd, "--resume", "-n", "6000", "--quiet"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    second = json.loads((run / "config.json").read_text())["trained"]
    assert second["env_frames"] >= 6_000
    assert second["policy_versions"] > first["policy_versions"]
    result = evaluate(load_agent(run), n_eval_episodes=2)
    assert result["n_eval_episodes"] == 2


def test_a_dead_worker_is_one_sentence_and_the_checkpoint_resumes(tmp_path):
    proc = start_training(tmp_path, "CartPole-v1", CARTPOLE_SMALL)
    try:
        run, kids = wait_for_checkpoint(proc, tmp_path, workers=2)
        workers = [k for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()]
        assert workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Rollout worker" in lines[0] and "killed by signal 9" in lines[0], err
    assert "--resume" in lines[0]
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "stopped"
    assert left_behind(kids) == []
    cmd = [sys.executable, "-m", "deeprl", "train", "--algo", "appo", "--env", "CartPole-v1", "-f", str(tmp_path)]
    frames = config["trained"]["env_frames"]
    resumed = subprocess.run(
        [*cmd, "--resume", "-n", str(frames + 2000), "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "config.json").read_text())["trained"]["env_frames"] >= frames + 2000


def test_ctrl_c_stops_every_process(tmp_path):
    proc = start_training(tmp_path, "CartPole-v1", CARTPOLE_SMALL)
    try:
        run, kids = wait_for_checkpoint(proc, tmp_path, workers=2)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Traceback" not in err, err
    assert json.loads((run / "config.json").read_text())["status"] == "stopped"
    assert left_behind(kids) == []
