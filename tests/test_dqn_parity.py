"""DQN against Stable-Baselines3's DQN on CartPole in lockstep: same initial weights, the same random numbers where
each library draws them (the explore-or-not uniform, the random action, the replay rows sampled), so the same
transitions go into both buffers and the same batches come out. Checked: epsilon at every step, every transition
stored (with SB3's time-limit handling: a truncated episode still bootstraps), when updates happen and how many
(learning_starts, train_freq, gradient_steps), when the target syncs (every target_update_interval env steps,
polyak with tau), and the Q-network and target weights after every training phase (Huber loss, Adam, gradient norm
clipped at max_grad_norm).

SB3 is run first with its randomness scripted and recorded; ours then replays the same script through the one
numpy Generator its training loop draws from.
"""

import sys

import numpy as np
import pytest
import torch

sb3 = pytest.importorskip("stable_baselines3")

SB3_NAMES = {"body.0": "q_net.0", "body.2": "q_net.2", "q": "q_net.4"}
MAX_STEPS = 30  # short episodes: the time limit cuts some of them, so the truncation handling is exercised


def _sb3_name(ours: str) -> str:
    layer, part = ours.rsplit(".", 1)
    return f"{SB3_NAMES[layer]}.{part}"


class Script:
    """The random numbers of one run, indexed by env step (one env): U[t] decides explore-or-not, A[t] is the
    random action; `batches` are the replay rows SB3 sampled, in order, with the buffer size SB3 sampled from."""

    def __init__(self, n):
        self.U = np.random.default_rng(123).random(n)
        self.A = np.random.default_rng(124).integers(0, 2, n)
        self.batches: list[tuple[int, np.ndarray]] = []


class ScriptedGenerator:
    """Stands in for deeprl's np.random.Generator: the per-step draws come from the script by step, the batch rows
    from SB3's recorded batches (the row range deeprl asks for is checked against SB3's)."""

    def __init__(self, script, batch_size):
        self.s, self.batch_size = script, batch_size
        self.t = -1
        self.next_batch = 0
        self.bit_generator = np.random.default_rng(0).bit_generator  # checkpoints save its state

    def random(self, n):
        assert n == 1
        self.t += 1
        return self.s.U[self.t : self.t + 1].copy()

    def integers(self, low, high, size):
        assert low == 0
        if size == 1:  # the random action of this step
            assert high == 2
            return self.s.A[self.t : self.t + 1].copy()
        assert size == self.batch_size
        if high == 1:  # the env of each sampled transition (one env)
            return np.zeros(size, dtype=np.int64)
        upper, rows = self.s.batches[self.next_batch]
        assert high == upper, f"batch {self.next_batch}: rows drawn from [0, {high}), SB3 drew from [0, {upper})"
        self.next_batch += 1
        return rows.copy()


CONFIGS = {
    # RL-Zoo's CartPole-v1 entry, on a short budget: learning_starts 1000, then 128 updates every 256 steps (two
    # training phases: float rounding (fused vs for-loop Adam) drifts apart by ~1e-5 after 512 updates at this lr)
    "zoo": dict(
        n_timesteps=1536,
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        net_arch=[256, 256],
    ),
    # epsilon still falling while training, soft target updates, a target interval that is not a multiple of
    # train_freq, gradient_steps -1 (as many as the steps collected), a gradient norm that clips
    "mixed": dict(
        n_timesteps=1200,
        learning_rate=1e-3,
        batch_size=32,
        buffer_size=100000,
        learning_starts=200,
        gamma=0.98,
        target_update_interval=50,
        tau=0.7,
        train_freq=16,
        gradient_steps=-1,
        exploration_fraction=0.8,
        exploration_initial_eps=0.9,
        exploration_final_eps=0.1,
        max_grad_norm=0.5,
        net_arch=[64, 64],
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dqn_matches_sb3_in_lockstep(name, monkeypatch, tmp_path):
    lockstep(CONFIGS[name], monkeypatch, tmp_path)


def lockstep(hp, monkeypatch, tmp_path, max_steps=MAX_STEPS, check_weights=True):
    """Run SB3 then deeprl with the same script and check everything; with check_weights False (long runs) only
    run them and return (SB3 model, deeprl run, first step where their actions differ or None)."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.dqn import dqn as sb3_dqn

    import deeprl.loop
    import deeprl.train
    from deeprl.algos import dqn

    torch.set_num_threads(1)
    total = hp["n_timesteps"]
    script = Script(total + hp["train_freq"])  # SB3 ends its last rollout past total when train_freq does not divide it

    # -- SB3, scripted and recorded ------------------------------------------------------------------------------
    sb3_hp = {k: v for k, v in hp.items() if k not in ("n_timesteps", "net_arch")}
    env = make_vec_env("CartPole-v1", n_envs=1, seed=0, env_kwargs={"max_episode_steps": max_steps})
    model = DQN("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": hp["net_arch"]}, **sb3_hp)
    init = {k: v.clone() for k, v in model.q_net.state_dict().items()}

    class NumpyScripted:  # SB3's predict: `np.random.rand() < self.exploration_rate` -> the script's U[t]
        def __getattr__(self, key):
            return getattr(np, key)

        class random:
            rand = staticmethod(lambda: float(script.U[model.num_timesteps]))

    monkeypatch.setattr(sb3_dqn, "np", NumpyScripted())
    monkeypatch.setattr(model.action_space, "sample", lambda *a, **k: script.A[model.num_timesteps])
    rb = model.replay_buffer
    get_samples = rb._get_samples

    def recorded(batch_inds, env=None):
        script.batches.append((rb.buffer_size if rb.full else rb.pos, np.array(batch_inds)))
        return get_samples(batch_inds, env)

    monkeypatch.setattr(rb, "_get_samples", recorded)
    sb3_eps: dict[int, float] = {}
    sb3_nets: dict[int, tuple[dict, dict]] = {}

    class Record(BaseCallback):
        def _on_step(self):  # after env.step, before DQN._on_step: the rate this step's action used
            sb3_eps[self.model.num_timesteps - 1] = self.model.exploration_rate
            return True

        def _on_rollout_start(self):  # after the previous rollout's train()
            sb3_nets[self.model.num_timesteps] = (
                {k: v.clone() for k, v in self.model.q_net.state_dict().items()},
                {k: v.clone() for k, v in self.model.q_net_target.state_dict().items()},
            )

    model.learn(total, callback=Record())
    sb3_nets[model.num_timesteps] = (
        {k: v.clone() for k, v in model.q_net.state_dict().items()},
        {k: v.clone() for k, v in model.q_net_target.state_dict().items()},
    )
    monkeypatch.undo()
    assert script.batches and (model.num_timesteps == total or not check_weights)

    # -- deeprl, replaying the script ----------------------------------------------------------------------------
    nets, buffers = [], []
    build = dqn.build_qnet

    def build_qnet(policy):
        net = build(policy)
        if not nets:
            assert {_sb3_name(k) for k in net.state_dict()} == set(init)  # the same architecture, layer by layer
            net.load_state_dict({k: init[_sb3_name(k)].clone() for k in net.state_dict()})
        nets.append(net)
        return net

    class Buffer(dqn.ReplayBuffer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            buffers.append(self)

    scripted = ScriptedGenerator(script, hp["batch_size"])
    real_default_rng = np.random.default_rng

    def default_rng(seed=None):
        if sys._getframe(1).f_globals.get("__name__") == "deeprl.algos.dqn":
            return scripted
        return real_default_rng(seed)

    ours_eps: dict[int, float] = {}
    ours_nets: dict[int, tuple[dict, dict]] = {}

    class Progress:
        done = 0

        def update(self, n, epsilon=None, **kw):
            ours_eps[self.done] = epsilon
            self.done += n
            if self.done in sb3_nets:
                ours_nets[self.done] = tuple({k: v.clone() for k, v in net.state_dict().items()} for net in nets)

        def close(self):
            pass

    monkeypatch.setattr(dqn, "build_qnet", build_qnet)
    monkeypatch.setattr(dqn, "ReplayBuffer", Buffer)
    monkeypatch.setattr(np.random, "default_rng", default_rng)
    monkeypatch.setattr(deeprl.loop, "Progress", lambda total, unit, **kw: Progress())
    run = deeprl.train.train(
        "dqn",
        "CartPole-v1",
        env_kwargs={"max_episode_steps": max_steps},
        overrides={**hp, "checkpoint_freq": 10**9},
        seed=0,
        log_folder=tmp_path,
        device="cpu",
        show_progress=False,
    )
    monkeypatch.undo()

    if not check_weights:  # a long run: report where the two first acted differently (float rounding drifts)
        (ours,) = buffers
        differ = np.flatnonzero(ours.actions[: rb.pos, 0] != rb.actions[: rb.pos, 0, 0])
        return model, run, int(differ[0]) if differ.size else None
    # epsilon at every step (SB3's rate is still its initial 0 at step 0, where actions are uniform anyway)
    steps = sorted(ours_eps)
    assert steps == list(range(total))
    np.testing.assert_allclose([ours_eps[t] for t in steps[1:]], [sb3_eps[t] for t in steps[1:]], rtol=1e-12)
    # every transition, in SB3's buffer layout (rows, envs)
    (ours,) = buffers
    n = rb.pos
    assert ours.pos == n == total
    np.testing.assert_array_equal(ours.obs[:n], rb.observations[:n])
    np.testing.assert_array_equal(ours.next_obs[:n], rb.next_observations[:n])
    np.testing.assert_array_equal(ours.actions[:n], rb.actions[:n, :, 0])
    np.testing.assert_array_equal(ours.rewards[:n], rb.rewards[:n])
    np.testing.assert_array_equal(ours.terminated[:n], rb.dones[:n] * (1 - rb.timeouts[:n]))
    assert rb.timeouts[:n].any() and (rb.dones[:n] * (1 - rb.timeouts[:n])).any()  # both kinds of episode end
    # every batch SB3 sampled was sampled by us, from the same range
    assert scripted.next_batch == len(script.batches)
    import json

    trained = json.loads((run.run_dir / "config.json").read_text())["trained"]
    assert trained["updates"] == model._n_updates == len(script.batches)
    # the weights after every training phase, and the target network's
    assert set(ours_nets) == set(sb3_nets) - {0} or set(ours_nets) == set(sb3_nets)
    for t in sorted(ours_nets):
        for which, ours_sd, sb3_sd in zip(("q", "target"), ours_nets[t], sb3_nets[t]):
            for k, v in ours_sd.items():
                np.testing.assert_allclose(
                    v.numpy(),
                    sb3_sd[_sb3_name(k)].numpy(),
                    rtol=1e-4,
                    atol=1e-5,
                    err_msg=f"after step {t}: {which} {k}",
                )
    return model, run
