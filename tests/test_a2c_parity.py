"""A2C against Stable-Baselines3's A2C in lockstep: same weights, same envs, same Gaussian noise -> the same rollouts
(normalized observations, rewards with the time-limit bootstrap, values, advantages) and the same parameters after
every RMSprop step, with VecNormalize's observation and reward statistics.

The env is a small point-mass version of PandaReachDense (Dict observation/achieved_goal/desired_goal, dense
-distance reward, success ends the episode, 50-step time limit): panda-gym itself is no use for lockstep, since
PyBullet turns float-rounding differences in the actions into visible differences within a few steps.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

sb3 = pytest.importorskip("stable_baselines3")

N_ENVS, N_STEPS, SEED = 4, 5, 0


class PointReach(gym.Env):
    """Move a point toward a goal in 3-D; terminated within 0.1 of it (a handful of episodes do, most time out)."""

    def __init__(self):
        box = lambda n: spaces.Box(-10.0, 10.0, (n,), np.float32)  # noqa: E731
        self.observation_space = spaces.Dict({"observation": box(6), "achieved_goal": box(3), "desired_goal": box(3)})
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

    def _obs(self):
        return {
            "observation": np.concatenate([self.pos, self.vel]).astype(np.float32),
            "achieved_goal": self.pos.astype(np.float32),
            "desired_goal": self.goal.astype(np.float32),
        }

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.vel = np.zeros(3), np.zeros(3)
        self.goal = self.np_random.uniform(-0.2, 0.2, 3)
        return self._obs(), {}

    def step(self, action):
        assert np.all(np.abs(action) <= 1.0), "actions reach the env clipped to the box"
        self.vel = 0.05 * np.asarray(action, np.float64)
        self.pos = self.pos + self.vel
        dist = float(np.linalg.norm(self.pos - self.goal))
        return self._obs(), -dist, dist < 0.1, False, {}


def _make():
    return gym.wrappers.TimeLimit(PointReach(), 50)


SB3_NAMES = {
    "pi_trunk.0": "mlp_extractor.policy_net.0",
    "pi_trunk.2": "mlp_extractor.policy_net.2",
    "vf_trunk.0": "mlp_extractor.value_net.0",
    "vf_trunk.2": "mlp_extractor.value_net.2",
    "action_head": "action_net",
    "value_head": "value_net",
}


def _sb3_name(ours: str) -> str:
    if ours == "log_std":
        return ours
    layer, part = ours.rsplit(".", 1)
    return f"{SB3_NAMES[layer]}.{part}"


def _flat(ours: np.ndarray, shape) -> np.ndarray:
    """Our [n_steps, n_envs, ...] layout as SB3's flattened buffer ([n_envs * n_steps, ...], env-major)."""
    return np.asarray(ours).swapaxes(0, 1).reshape(shape)


def test_a2c_matches_sb3_in_lockstep(monkeypatch):
    from stable_baselines3 import A2C
    from stable_baselines3.common.distributions import DiagGaussianDistribution
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from deeprl.algos import a2c
    from deeprl.normalize import Normalizer
    from deeprl.policies import build_policy, parse_policy_kwargs
    from deeprl.rollout import Collector, RolloutBuffer

    torch.set_num_threads(1)
    # one noise stream per side, drawn in the same order: both sample exactly one [n_envs, 3] draw per step
    noise_sb3, noise_ours = np.random.default_rng(1), np.random.default_rng(1)

    def sb3_sample(self):
        d = self.distribution
        return d.mean + d.stddev * torch.as_tensor(noise_sb3.standard_normal(tuple(d.mean.shape)), dtype=torch.float32)

    monkeypatch.setattr(DiagGaussianDistribution, "sample", sb3_sample)
    venv_sb3 = VecNormalize(DummyVecEnv([_make] * N_ENVS), norm_obs=True, norm_reward=True, clip_obs=10.0)
    model = A2C("MultiInputPolicy", venv_sb3, seed=SEED, device="cpu")  # SB3's defaults: the course's Unit 6

    hp = a2c.Settings(n_envs=N_ENVS)
    venv = gym.vector.SyncVectorEnv([_make] * N_ENVS, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    policy = build_policy(venv.single_observation_space, venv.single_action_space, parse_policy_kwargs(None))
    policy.sample = lambda dist, deterministic=False: (
        dist
        + torch.as_tensor(noise_ours.standard_normal(tuple(dist.shape)), dtype=torch.float32) * policy.log_std.exp()
    )
    sb3_state = model.policy.state_dict()
    assert {_sb3_name(k) for k in policy.state_dict()} == set(sb3_state)  # the same architecture, layer by layer
    policy.load_state_dict({k: sb3_state[_sb3_name(k)].clone() for k in policy.state_dict()})
    opt = a2c.make_optimizer(policy.parameters(), hp, hp.learning_rate)
    norm = Normalizer(venv.single_observation_space, n_envs=N_ENVS, gamma=hp.gamma, clip_obs=10.0)
    collector = Collector(venv, norm, gamma=hp.gamma, seed=SEED)
    buffer = RolloutBuffer(N_STEPS, N_ENVS, venv.single_observation_space, venv.single_action_space)

    episode_ends = 0
    for update in range(14):  # 70 steps: every env times out at step 50, some reach the goal first
        model.learn(N_ENVS * N_STEPS, reset_num_timesteps=update == 0)
        collector.collect(policy, buffer)
        buffer.compute_returns_and_advantage(collector.last_values(policy), hp.gamma, hp.gae_lambda)
        loss, _ = a2c.a2c_loss(policy, buffer.tensors(), hp)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), hp.max_grad_norm)
        opt.step()

        rb = model.rollout_buffer
        for key in buffer.obs:  # the normalized observations the policy saw
            np.testing.assert_allclose(
                rb.observations[key],
                _flat(buffer.obs[key], rb.observations[key].shape),
                atol=1e-5,
                err_msg=f"update {update}: obs[{key}]",
            )
        np.testing.assert_allclose(rb.actions, _flat(buffer.actions, rb.actions.shape), atol=1e-5)
        # normalized rewards, plus gamma * V(final obs) where the time limit cut an episode
        np.testing.assert_allclose(rb.rewards, buffer.rewards, atol=1e-5, err_msg=f"update {update}: rewards")
        for name in ("values", "log_probs", "advantages", "returns"):
            np.testing.assert_allclose(
                getattr(rb, name),
                _flat(getattr(buffer, name), getattr(rb, name).shape),
                atol=1e-4,
                err_msg=f"update {update}: {name}",
            )
        for k, v in policy.state_dict().items():
            np.testing.assert_allclose(
                model.policy.state_dict()[_sb3_name(k)].numpy(),
                v.numpy(),
                atol=1e-5,
                err_msg=f"update {update}: parameter {k}",
            )
        for key, rms in norm.obs_rms.items():
            np.testing.assert_allclose(venv_sb3.obs_rms[key].mean, rms.mean, atol=1e-7)
            np.testing.assert_allclose(venv_sb3.obs_rms[key].var, rms.var, rtol=1e-5)
        np.testing.assert_allclose(venv_sb3.ret_rms.var, norm.ret_rms.var, rtol=1e-5)
        episode_ends += int(buffer.dones.sum())
    print("episode ends", episode_ends)
    assert episode_ends > N_ENVS  # every env timed out (the bootstrap was exercised) and some reached the goal
    venv.close()
    venv_sb3.close()


def test_panda_autoresets_repeat_with_the_seed():
    """panda-gym reseeds its goal generator from OS entropy on every unseeded reset; ours draws that seed from the
    env's own generator, so a training run's goals (and so its numbers) repeat with its seed."""
    pytest.importorskip("panda_gym")
    from deeprl.envs import make_env

    def goals(seed):
        env = make_env("PandaReachDense-v3", {}, training=True)
        try:
            out = [env.reset(seed=seed)[0]["desired_goal"]] + [env.reset()[0]["desired_goal"] for _ in range(3)]
        finally:
            env.close()
        return np.array(out)

    a, b = goals(7), goals(7)
    np.testing.assert_array_equal(a, b)
    assert len({tuple(g) for g in a}) == 4  # still a new goal every episode
