"""PPO: the loss against a hand computation, the distributions against torch.distributions, a short run that
learns, continuous actions, loading for evaluate/enjoy, and a run killed with SIGKILL that resumes."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from deeprl.agent import load_agent
from deeprl.algos import ppo
from deeprl.errors import UserError
from deeprl.evaluation import evaluate
from deeprl.train import train

# RL-Zoo's CartPole-v1 settings, shrunk to a test budget
FAST = {
    "n_envs": 8,
    "n_steps": 32,
    "batch_size": 256,
    "n_epochs": 20,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
    "clip_range_vf": None,
    "vf_coef": 0.5,
}


class _Fixed:
    """evaluate_actions returns given numbers, so the loss arithmetic can be checked by hand."""

    def __init__(self, log_prob, entropy, values):
        self.out = (torch.tensor(log_prob), torch.tensor(entropy), torch.tensor(values))

    def evaluate_actions(self, obs, actions):
        return self.out


def test_ppo_loss_matches_hand_computation():
    # ratios 1.5 and 0.5; advantages +1 and -1; both ratios fall outside 1 +- 0.2
    policy = _Fixed([math.log(1.5), math.log(0.5)], [0.5, 0.7], [1.0, 2.0])
    mb = {
        "obs": None,
        "actions": None,
        "log_probs": torch.zeros(2),
        "advantages": torch.tensor([1.0, -1.0]),
        "values": torch.tensor([0.9, 1.0]),
        "returns": torch.tensor([1.5, 2.5]),
    }
    loss, info = ppo.ppo_loss(policy, mb, 0.2, None, 0.01, 0.5, normalize_advantage=False)
    # policy: max(-1*1.5, -1*1.2) = -1.2 ; max(1*0.5, 1*0.8) = 0.8  -> mean -0.2
    # value: ((1 - 1.5)^2 + (2 - 2.5)^2) / 2 = 0.25 ; entropy mean 0.6
    assert info["policy_loss"].item() == pytest.approx(-0.2)
    assert info["value_loss"].item() == pytest.approx(0.25)
    assert loss.item() == pytest.approx(-0.2 - 0.01 * 0.6 + 0.5 * 0.25)
    # approx KL = mean((r - 1) - log r); both samples clipped
    kl = ((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2
    assert info["approx_kl"].item() == pytest.approx(kl, rel=1e-5)
    assert info["clip_fraction"].item() == 1.0
    # value clipping (0.2 around the old values 0.9, 1.0): V_clip = 1.0, 1.2 -> max(0.25, 0.25), max(0.25, 1.69)
    loss, info = ppo.ppo_loss(policy, mb, 0.2, 0.2, 0.01, 0.5, normalize_advantage=False)
    assert info["value_loss"].item() == pytest.approx((0.25 + 1.69) / 2)
    # advantage normalization: [1, -1] -> [1/sqrt 2, -1/sqrt 2] (unbiased std), policy loss scales with it
    loss, info = ppo.ppo_loss(policy, mb, 0.2, None, 0.0, 0.5, normalize_advantage=True)
    assert info["policy_loss"].item() == pytest.approx(-0.2 / math.sqrt(2), rel=1e-5)


def test_ppo_loss_gradient_on_a_tiny_batch():
    # one sample inside the clip range: d loss / d log_prob = -A * ratio / B ; d loss / d V = vf_coef * 2 (V - R) / B
    lp = torch.tensor([math.log(1.1), math.log(2.0)], requires_grad=True)
    v = torch.tensor([0.0, 1.0], requires_grad=True)

    class P:
        def evaluate_actions(self, obs, actions):
            return lp, torch.zeros(2), v

    mb = {
        "obs": None,
        "actions": None,
        "log_probs": torch.zeros(2),
        "advantages": torch.tensor([2.0, 3.0]),
        "values": torch.zeros(2),
        "returns": torch.tensor([1.0, 1.0]),
    }
    loss, _ = ppo.ppo_loss(P(), mb, 0.2, None, 0.0, 0.5, normalize_advantage=False)
    loss.backward()
    # sample 0: ratio 1.1 unclipped -> -2 * 1.1 / 2 ; sample 1: ratio 2.0 clipped at 1.2 with A > 0 -> no gradient
    torch.testing.assert_close(lp.grad, torch.tensor([-1.1, 0.0]))
    torch.testing.assert_close(v.grad, torch.tensor([0.5 * 2 * (0.0 - 1.0) / 2, 0.0]))


def test_distributions_match_torch_distributions():
    import gymnasium as gym

    from deeprl.policies import ActorCritic

    torch.manual_seed(0)
    obs = torch.randn(5, 3)
    disc = ActorCritic(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(4))
    actions = torch.randint(0, 4, (5,))
    logp, ent, _ = disc.evaluate_actions(obs, actions)
    logits, _ = disc(obs)
    ref = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(logp, ref.log_prob(actions))
    torch.testing.assert_close(ent, ref.entropy())
    cont = ActorCritic(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,)), log_std_init=-0.5)
    actions = torch.randn(5, 2)
    logp, ent, _ = cont.evaluate_actions(obs, actions)
    mean, _ = cont(obs)
    ref = torch.distributions.Normal(mean, torch.full_like(mean, math.exp(-0.5)))
    torch.testing.assert_close(logp, ref.log_prob(actions).sum(-1))
    torch.testing.assert_close(ent, ref.entropy().sum(-1))


# towers of unequal depth, of equal depth (every level shared in one buffer), one with no hidden layer, and equal
# towers (the deeper levels as batched products of the pair), and equal towers too wide for acting to pack them
# into one network (fast.actor_critic.PACK_MAX_WIDTH)
ARCHS = [
    {"pi": [8, 6], "vf": [5]},
    {"pi": [7, 5], "vf": [6, 4]},
    {"pi": [], "vf": [5, 3]},
    {"pi": [6, 5, 4], "vf": [6, 5, 4]},
    {"pi": [136, 132], "vf": [136, 132]},
]


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("activation,clip_vf", [("tanh", None), ("relu", 0.2)])
@pytest.mark.parametrize("arch", range(len(ARCHS)))
def test_written_out_gradient_equals_autograd(discrete, activation, clip_vf, arch):
    import gymnasium as gym

    from deeprl.policies import ActorCritic

    torch.manual_seed(1)
    act_space = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1, 1, (2,))
    policy = ActorCritic(
        gym.spaces.Box(-1, 1, (4,)), act_space, net_arch=ARCHS[arch], activation=activation, log_std_init=-0.3
    )
    n = 16
    obs = torch.randn(n, 4)
    with torch.no_grad():
        actions = policy.act(obs)[0]
        old_logp = policy.evaluate_actions(obs, actions)[0] + 0.3 * torch.randn(n)  # ratios inside and outside
    mb = {
        "obs": obs,
        "actions": actions,
        "log_probs": old_logp,
        "advantages": torch.randn(n),
        "values": torch.randn(n),
        "returns": torch.randn(n),
    }
    args = (0.2, clip_vf, 0.01, 0.5, True)
    loss, ref_info = ppo.ppo_loss(policy, mb, *args)
    policy.zero_grad()
    loss.backward()
    ref = {k: p.grad.clone() for k, p in policy.named_parameters()}
    from deeprl.fast.actor_critic import FastMLP
    from deeprl.fast.ppo import WrittenOutPPO

    fast = FastMLP.attach(policy)
    assert fast is not None
    objective = WrittenOutPPO(fast)
    step = objective.loss(objective.prepare(mb, normalize_advantage=False), *args)
    step.backward()
    info = objective.summary([step], 0.2)
    for k, p in policy.named_parameters():
        torch.testing.assert_close(p.grad, ref[k], rtol=1e-4, atol=1e-6, msg=k)
    for k in ref_info:
        assert float(info[k]) == pytest.approx(float(ref_info[k]), rel=1e-5, abs=1e-6), k
    # collection's numpy inference (packed weights) computes what the torch forward does
    dist, value = fast.forward(obs)
    action, np_value, np_logp = fast.numpy_act(obs.numpy(), np.random.default_rng(0), deterministic=True)
    np.testing.assert_allclose(np_value, value.numpy(), rtol=1e-5, atol=1e-6)
    if discrete:
        np.testing.assert_array_equal(action, dist.argmax(1).numpy())
    else:
        np.testing.assert_allclose(action, dist.numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        torch.from_numpy(np.asarray(np_logp, np.float32)),
        policy.evaluate_actions(obs, torch.as_tensor(action))[0].detach(),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("flat", [False, True])
def test_adam_matches_torch(flat):
    from deeprl.fast.flat import Adam, FlatParams, clip_grad_norm

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    if flat:  # parameters as views of one tensor (bias first: any layout), moments and step on that tensor
        FlatParams([a.bias, a.weight])
    ours, ref = Adam(a.parameters(), lr=1e-2, eps=1e-5), torch.optim.Adam(b.parameters(), lr=1e-2, eps=1e-5)
    assert (ours.flat is not None) == flat
    for _ in range(4):
        x = torch.randn(7, 5)
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            if opt is ours:
                clip_grad_norm(list(a.parameters()), 0.5)
            else:
                torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    # torch's state_dict format both ways
    sd, ref_sd = ours.state_dict(), ref.state_dict()
    for i, st in ref_sd["state"].items():
        for k in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(sd["state"][i][k].float(), st[k].float())
    again = Adam(a.parameters(), lr=1e-2, eps=1e-5)
    again.load_state_dict(sd)
    torch.testing.assert_close(again.exp_avg_sq[1], ours.exp_avg_sq[1])


def test_short_run_on_cartpole_improves_and_loads(tmp_path):
    before = evaluate(_untrained_agent(), env_id="CartPole-v1", n_eval_episodes=5)["mean_reward"]
    run = train(
        "ppo",
        "CartPole-v1",
        overrides=FAST,
        n_timesteps=16384,
        seed=0,
        log_folder=tmp_path,
        show_progress=False,
        device="cpu",
    )
    agent = load_agent(run.run_dir)
    after = evaluate(agent, n_eval_episodes=5)["mean_reward"]
    assert after > before + 50, (before, after)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["trained"]["timesteps"] == 16384 and config["policy"]["class"] == "ActorCritic"
    # TensorBoard reads every update's scalars and every episode (written as one event per update)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.run_dir / "tb"))
    acc.Reload()
    updates = 16384 // (FAST["n_envs"] * FAST["n_steps"])
    assert [e.step for e in acc.Scalars("train/policy_loss")] == [256 * (i + 1) for i in range(updates)]
    assert len(acc.Scalars("rollout/episode_return")) == config["trained"]["episodes"] > updates
    assert [e.value for e in acc.Scalars("train/clip_range")] == pytest.approx(
        [0.2 * (1 - 256 * (i + 1) / 16384) for i in range(updates)], abs=1e-7
    )
    # the same seed gives the same numbers
    again = train(
        "ppo",
        "CartPole-v1",
        overrides=FAST,
        n_timesteps=2048,
        seed=3,
        log_folder=tmp_path / "a",
        show_progress=False,
        device="cpu",
    )
    twice = train(
        "ppo",
        "CartPole-v1",
        overrides=FAST,
        n_timesteps=2048,
        seed=3,
        log_folder=tmp_path / "b",
        show_progress=False,
        device="cpu",
    )
    from deeprl.modelio import load_model

    a, b = load_model(again.run_dir)[1], load_model(twice.run_dir)[1]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _untrained_agent():
    import gymnasium as gym

    from deeprl.policies import ActorCritic, PolicyAgent

    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-np.inf, np.inf, (4,)), gym.spaces.Discrete(2))
    return PolicyAgent(policy, None, {"env_id": "CartPole-v1"}, gym.spaces.Discrete(2))


def test_continuous_actions_with_normalization(tmp_path):
    hp = {
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 2,
        "normalize": True,
        "policy_kwargs": "dict(net_arch=dict(pi=[32], vf=[32]), activation_fn=nn.ReLU, log_std_init=-1)",
    }
    run = train(
        "ppo",
        "LunarLander-v2",
        env_kwargs={"continuous": True},
        overrides=hp,
        n_timesteps=256,
        log_folder=tmp_path,
        show_progress=False,
        device="cpu",
    )
    agent = load_agent(run.run_dir)
    assert agent.normalizer is not None and not agent.normalizer.training
    action = agent.act(np.zeros(8, np.float32))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    r = evaluate(agent, n_eval_episodes=1)
    assert np.isfinite(r["mean_reward"])


def test_wrong_env_model_fails_with_one_sentence(tmp_path):
    run = train(
        "ppo",
        "CartPole-v1",
        overrides={**FAST, "n_epochs": 1},
        n_timesteps=256,
        log_folder=tmp_path,
        show_progress=False,
        device="cpu",
    )
    config = json.loads((run.run_dir / "config.json").read_text())
    config["env_id"] = "Acrobot-v1"
    (run.run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="does not fit this environment"):
        load_agent(run.run_dir)


def test_bad_hyperparameters_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="lin_"):
        train("ppo", "CartPole-v1", overrides={"learning_rate": "lin_x"}, log_folder=tmp_path, show_progress=False)
    with pytest.raises(UserError, match="policy_kwargs"):
        train(
            "ppo",
            "CartPole-v1",
            overrides={"policy_kwargs": {"net_arc": [64]}},
            log_folder=tmp_path,
            show_progress=False,
        )


def test_killed_run_resumes_with_its_counters(tmp_path):
    """SIGKILL once the first checkpoint exists; --resume continues from its step counter and finishes."""
    hp = ["n_envs:4", "n_steps:64", "batch_size:256", "n_epochs:1", "checkpoint_every:1"]
    total = 40 * 256
    cmd = [
        sys.executable,
        "-m",
        "deeprl",
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "-f",
        str(tmp_path),
        "-n",
        str(total),
        "--device",
        "cpu",
        "--quiet",
        "--hyperparams",
        *hp,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "ppo" / "CartPole-v1_1" / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    try:
        while not ckpt.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    from deeprl.checkpoint import load_checkpoint

    _, state = load_checkpoint(ckpt.parent)
    assert state["timesteps"] > 0 and state["timesteps"] % 256 == 0
    assert not (ckpt.parent / "model.safetensors").exists() or state["timesteps"] == total
    run = train("ppo", "CartPole-v1", resume=True, log_folder=tmp_path, show_progress=False, device="cpu")
    assert run.run_dir == ckpt.parent
    trained = json.loads((run.run_dir / "config.json").read_text())["trained"]
    assert trained["resumed_from"] == state["timesteps"]
    assert trained["timesteps"] == total and trained["updates"] == total // 256
    assert evaluate(load_agent(run.run_dir), n_eval_episodes=1)["n_eval_episodes"] == 1


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Nothing to resume"):
        train("ppo", "CartPole-v1", resume=True, log_folder=tmp_path, show_progress=False)


def test_ctrl_c_saves_a_checkpoint_then_exits(tmp_path):
    hp = ["n_envs:4", "n_steps:64", "batch_size:256", "n_epochs:1", "checkpoint_every:1000"]
    cmd = [
        sys.executable,
        "-m",
        "deeprl",
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "-f",
        str(tmp_path),
        "-n",
        "10000000",
        "--device",
        "cpu",
        "--quiet",
        "--hyperparams",
        *hp,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tb = tmp_path / "ppo" / "CartPole-v1_1" / "tb"
    deadline = time.monotonic() + 120
    try:
        while not (tb.exists() and any(tb.iterdir())):  # training has started once TensorBoard has a file
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training did not start within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode()
    from deeprl.checkpoint import load_checkpoint

    # checkpoint_every is far away: this file can only be the save made on Ctrl-C
    tensors, state = load_checkpoint(tb.parent)
    assert state["timesteps"] % 256 == 0 and "policy.value_head.weight" in tensors and "rng.torch" in tensors


def test_written_out_gradient_trains_like_autograd(tmp_path):
    """The MLP fast path is an optimization only: the same run through torch autograd ends at the same weights."""
    import numpy as np

    from deeprl.modelio import load_model
    from deeprl.train import train

    fast = train(
        "ppo", "CartPole-v1", overrides={"n_timesteps": 2048}, log_folder=tmp_path / "fast", show_progress=False
    )
    ref = train(
        "ppo",
        "CartPole-v1",
        overrides={"n_timesteps": 2048, "autograd": True},
        log_folder=tmp_path / "ref",
        show_progress=False,
    )
    a, b = load_model(fast.run_dir)[1], load_model(ref.run_dir)[1]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)


def test_fast_path_is_chosen_where_the_policy_is_built():
    """build_policy(fast=True): the written-out twin for MLPs on flat observations, none for other shapes; a deep
    copy (an agent, a frozen opponent) runs the general modules, with the same actions."""
    import copy

    import gymnasium as gym

    from deeprl.algos.ppo import AutogradPPO, ppo_objective
    from deeprl.fast.ppo import WrittenOutPPO
    from deeprl.policies import build_policy, parse_policy_kwargs

    kw = parse_policy_kwargs(None)
    box, disc = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2)
    assert build_policy(box, disc, kw).fast is None
    policy = build_policy(box, disc, kw, fast=True)
    assert policy.fast is not None
    assert isinstance(ppo_objective(policy), WrittenOutPPO)
    assert isinstance(ppo_objective(policy, autograd=True), AutogradPPO)
    assert build_policy(gym.spaces.Dict({"x": box}), disc, kw, fast=True).fast is None
    twin = copy.deepcopy(policy)
    assert twin.fast is None
    obs = torch.randn(6, 4)
    torch.testing.assert_close(twin.action(obs), policy.action(obs))


@pytest.mark.parametrize("scope", ["minibatch", "rollout"])
def test_advantage_scope_normalizes_per_minibatch_or_once_per_rollout(scope):
    """SB3 and CleanRL normalize each minibatch's advantages; ML-Agents normalizes the whole rollout once."""
    import gymnasium as gym

    from deeprl.fast.flat import Adam
    from deeprl.policies import ActorCritic

    torch.manual_seed(0)
    policy = ActorCritic(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3), net_arch=[8])
    n = 64
    obs = torch.randn(n, 4)
    with torch.no_grad():
        actions, _, log_probs = policy.act(obs)
    adv = torch.randn(n) * 3 + 5
    data = {"obs": obs, "actions": actions, "log_probs": log_probs, "advantages": adv, "values": torch.zeros(n)}
    data["returns"] = torch.randn(n)
    seen = []

    class Spy(ppo.AutogradPPO):
        def loss(self, mb, *args, normalize_advantage=True):
            adv = mb["advantages"]
            seen.append((normalize_advantage, float(adv.mean()), float(adv.std())))
            return super().loss(mb, *args, normalize_advantage=normalize_advantage)

    ppo.ppo_update(
        policy,
        Adam(list(policy.parameters()), lr=1e-3),
        data,
        n_epochs=1,
        batch_size=16,
        clip_range=0.2,
        clip_range_vf=None,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        target_kl=None,
        normalize_advantage=True,
        rng=np.random.default_rng(0),
        objective=Spy(policy),
        advantage_scope=scope,
    )
    assert len(seen) == 4
    if scope == "minibatch":  # raw advantages reach each step, which normalizes its own 16
        assert all(flag and mean > 3 for flag, mean, _ in seen)
    else:  # already normalized over all 64: the 4 minibatches' means are not each 0 but average to 0
        assert not any(flag for flag, _, _ in seen)
        assert abs(np.mean([m for _, m, _ in seen])) < 1e-5 and max(abs(m) for _, m, _ in seen) > 1e-3
    with pytest.raises(UserError, match="advantage_scope must be minibatch or rollout"):
        ppo._check(ppo.Settings(advantage_scope="episode"))
