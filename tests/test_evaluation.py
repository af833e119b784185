import gymnasium as gym
import numpy as np
import pytest

from deeprl.evaluation import evaluate


class ScriptedAgent:
    """Always the same action; returns are known from the env's rules."""

    def __init__(self, env_id, env_kwargs=None, action=0):
        self.env_id, self.env_kwargs, self.config, self.action = env_id, env_kwargs or {}, {}, action

    def act(self, obs, deterministic=True):
        return self.action


def test_truncated_episodes_count_taxi():
    # Taxi: an agent that always moves south never delivers: every step is -1 and each episode is cut at the
    # protocol's 99 steps. Those truncated episodes must count (the course once dropped them).
    r = evaluate(ScriptedAgent("Taxi-v3", action=0))
    assert r["n_eval_episodes"] == 100 and r["n_truncated"] == 100
    assert r["mean_reward"] == -99.0 and r["std_reward"] == 0.0 and r["result"] == -99.0
    assert r["is_deterministic"] is True and r["env_id"] == "Taxi-v3"


def test_figures_match_numpy_population_std():
    # CartPole with a constant push: the episode lengths vary with the reset seed; compare with a direct loop.
    agent = ScriptedAgent("CartPole-v1", action=1)
    r = evaluate(agent, n_eval_episodes=7, seed=3)
    env = gym.make("CartPole-v1")
    returns = []
    for i in range(7):
        env.reset(seed=3 + i)
        total, done = 0.0, False
        while not done:
            _, rew, term, trunc, _ = env.step(1)
            total += rew
            done = term or trunc
        returns.append(total)
    assert r["episode_rewards"] == returns
    assert r["mean_reward"] == pytest.approx(np.mean(returns))
    assert r["std_reward"] == pytest.approx(np.std(returns))
    assert r["result"] == pytest.approx(np.mean(returns) - np.std(returns))
    assert "T" in r["eval_datetime"]


def test_frozenlake_goal_policy_scores_one():
    # 4x4 no-slippery: right,right,down,down,down,right reaches the goal. Scripted by position.
    path = {0: 2, 1: 2, 2: 1, 6: 1, 10: 1, 14: 2}

    class PathAgent(ScriptedAgent):
        def act(self, obs, deterministic=True):
            return path[int(obs)]

    r = evaluate(PathAgent("FrozenLake-v1", {"map_name": "4x4", "is_slippery": False}))
    assert r["n_eval_episodes"] == 100 and r["mean_reward"] == 1.0 and r["result"] == 1.0
    assert r["env_tag"] == "FrozenLake-v1-4x4-no_slippery"
