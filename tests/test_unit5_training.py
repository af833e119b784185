"""Unit 5 training (issue 17): PPO on SnowballTarget's MultiDiscrete([3, 2]) branches and Pyramids' Discrete(5),
the course's settings as defaults, and the course workflow: push with ML-Agents' tags, index, Unit 5 passes."""

import numpy as np
import torch
from gymnasium import spaces

from deeprl.policies import build_policy


def test_multidiscrete_policy_sums_branch_log_probs_and_entropies():
    torch.manual_seed(0)
    policy = build_policy(spaces.Box(-1, 1, (4,)), spaces.MultiDiscrete([3, 2]), {"net_arch": [8]}, fast=True)
    assert policy.fast is None  # the branches go through the general modules
    obs = torch.randn(5, 4)
    actions = torch.tensor([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]])
    logp, entropy, _ = policy.evaluate_actions(obs, actions)
    logits, _ = policy(obs)
    a, b = torch.distributions.Categorical(logits=logits[:, :3]), torch.distributions.Categorical(logits=logits[:, 3:])
    torch.testing.assert_close(logp, a.log_prob(actions[:, 0]) + b.log_prob(actions[:, 1]))
    torch.testing.assert_close(entropy, a.entropy() + b.entropy())
    sampled, _, logp_s = policy.act(obs)
    assert sampled.shape == (5, 2) and (sampled[:, 0] < 3).all() and (sampled[:, 1] < 2).all()
    torch.testing.assert_close(logp_s, policy.evaluate_actions(obs, sampled)[0])
    assert policy.action(obs).tolist() == torch.stack([logits[:, :3].argmax(1), logits[:, 3:].argmax(1)], 1).tolist()


def test_course_settings_are_the_defaults():
    from deeprl.algos import ppo
    from deeprl.settings import default_hyperparams

    snow = default_hyperparams("ppo", ppo, "SnowballTarget", "ML-Agents-SnowballTarget")
    assert snow["n_envs"] * snow["n_steps"] == 2048 and snow["n_steps"] == 64 and snow["n_timesteps"] == 200000
    assert (snow["batch_size"], snow["n_epochs"], snow["ent_coef"], snow["learning_rate"]) == (
        128,
        3,
        "lin_0.005",
        "lin_3e-4",
    )
    pyr = default_hyperparams("ppo", ppo, "Pyramids", "ML-Agents-Pyramids")
    assert pyr["n_envs"] * pyr["n_steps"] == 2048 and pyr["n_steps"] == 128 and pyr["n_timesteps"] == 1_000_000
    assert pyr["policy_kwargs"]["net_arch"] == [512, 512] and pyr["ent_coef"] == "lin_0.01"


def test_train_push_index_and_unit5_passes(tmp_path):
    """A few updates of each (not a trained agent: Unit 5 is push only), pushed with the course's tags, indexed by
    the leaderboard, and the unit5 row of the pusher's progress passes."""
    from deeprl.certification import progress
    from deeprl.hub import resolve_repo
    from deeprl.leaderboard import index
    from deeprl.publish import push_model
    from deeprl.train import train

    repos = {}
    for env, tag in (("SnowballTarget", "ML-Agents-SnowballTarget"), ("Pyramids", "ML-Agents-Pyramids")):
        run = train(
            "ppo",
            env,
            log_folder=tmp_path,
            show_progress=False,
            n_timesteps=256,
            overrides={"n_envs": 2, "n_steps": 128, "batch_size": 64, "n_epochs": 1},
        )
        repo = f"alice/ppo-{env}"
        push_model(run.run_dir, repo, record_video=False)
        card = (resolve_repo(repo) / "README.md").read_text()
        assert f"- {tag}" in card and "- ppo" in card
        repos[env] = repo
    report = index(timeout_s=300)
    assert report.evaluated == 2
    row = next(r for r in progress("alice")["assignments"] if r["key"] == "unit5")
    assert row["passed"], row


def test_snowball_agent_plays_branch_actions(tmp_path):
    from deeprl.agent import load_agent
    from deeprl.evaluation import evaluate
    from deeprl.train import train

    run = train(
        "ppo",
        "SnowballTarget",
        log_folder=tmp_path,
        show_progress=False,
        n_timesteps=128,
        overrides={"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1},
    )
    agent = load_agent(run.run_dir)
    a = agent.act(np.zeros(137, np.float32))
    assert a.shape == (2,) and a.dtype == np.int64
    assert evaluate(agent, n_eval_episodes=1)["n_eval_episodes"] == 1
