"""Atari preprocessing as SB3's AtariWrapper: shapes, dtypes, training-only wrappers, whole games at evaluation."""

import numpy as np
import pytest

pytest.importorskip("ale_py")

from deeprl.envs import get_spec, make_env  # noqa: E402
from deeprl.envs.atari import EpisodicLife, FireReset  # noqa: E402

GAME = "SpaceInvadersNoFrameskip-v4"


def _wrappers(env):
    out = []
    while env is not None:
        out.append(type(env).__name__)
        env = getattr(env, "env", None)
    return out


def test_observation_is_four_stacked_84x84_uint8_frames():
    env = make_env(GAME, training=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # at reset the stack is the first frame four times (what the replay buffer pads with)
    assert all((obs[i] == obs[3]).all() for i in range(3))
    obs2, *_ = env.step(0)
    assert obs2.shape == (4, 84, 84) and obs2.dtype == np.uint8
    assert (obs2[:3] == obs[1:]).all()
    env.close()


def test_training_and_evaluation_wrappers():
    train = _wrappers(make_env(GAME, training=True))
    evaluation = _wrappers(make_env(GAME, training=False))
    assert "EpisodicLife" in train and "TransformReward" in train
    assert "EpisodicLife" not in evaluation and "TransformReward" not in evaluation
    for names in (train, evaluation):
        assert "AtariPreprocessing" in names and "FireReset" in names and names[0] == "FrameStackObservation"
    assert get_spec(GAME).deterministic is False and get_spec(GAME).unit == "3"


def test_v4_rules_no_sticky_actions_minimal_action_set():
    env = make_env(GAME)
    assert env.unwrapped._frameskip == 1  # skipping is the wrapper's (max of the last two frames)
    assert env.unwrapped.get_action_meanings() == ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]
    env.close()


def test_training_clips_rewards_and_ends_episodes_at_a_lost_life():
    env = make_env(GAME, training=True)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    rewards, lives_at_end = [], None
    for _ in range(3000):
        _, r, term, trunc, _ = env.step(int(rng.integers(6)))
        rewards.append(r)
        if term or trunc:
            lives_at_end = env.unwrapped.ale.lives()
            break
    assert set(np.unique(rewards)) <= {-1.0, 0.0, 1.0} and max(rewards) == 1.0
    assert lives_at_end is not None and lives_at_end > 0  # the first "episode" is one life, the game goes on
    env.close()


def test_evaluation_plays_a_whole_game_with_real_scores():
    env = make_env(GAME, training=False)
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    total, big = 0.0, False
    for _ in range(20000):
        _, r, term, trunc, info = env.step(int(rng.integers(6)))
        total += r
        big |= r > 1
        if term or trunc:
            break
    assert term and env.unwrapped.ale.lives() == 0  # all lives used
    assert big and total > 0  # unclipped invader scores (5, 10, ...)
    env.close()


def test_vector_training_env_reports_game_scores():
    from deeprl.envs.vector import make_vec_env

    venv = make_vec_env(GAME, 1, seed=0)
    assert venv.single_observation_space.shape == (4, 84, 84)
    venv.close()
    assert issubclass(EpisodicLife, object) and issubclass(FireReset, object)
