"""VecNormalize semantics of deeprl.normalize, checked against direct computations over the same data."""

import numpy as np
import pytest
from gymnasium import spaces

from deeprl.normalize import Normalizer

DICT_SPACE = spaces.Dict(
    {
        "observation": spaces.Box(-10, 10, (6,), np.float32),
        "achieved_goal": spaces.Box(-10, 10, (3,), np.float32),
        "desired_goal": spaces.Box(-10, 10, (3,), np.float32),
    }
)


def batches(rng, n_batches=50, n_envs=4):
    for _ in range(n_batches):
        yield {
            "observation": rng.normal(3.0, 2.0, (n_envs, 6)).astype(np.float32),
            "achieved_goal": rng.uniform(-1, 5, (n_envs, 3)).astype(np.float32),
            "desired_goal": rng.normal(-4.0, 0.5, (n_envs, 3)).astype(np.float32),
        }


def test_dict_obs_statistics_match_direct_mean_and_var():
    rng = np.random.default_rng(0)
    norm = Normalizer(DICT_SPACE, n_envs=4)
    seen = {k: [] for k in DICT_SPACE.spaces}
    for b in batches(rng):
        norm.obs(b)
        for k, v in b.items():
            seen[k].append(v)
    for k, chunks in seen.items():
        data = np.concatenate(chunks).astype(np.float64)
        rms = norm.obs_rms[k]
        # the only difference from the direct figures is VecNormalize's prior count of 1e-4
        np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-5, atol=1e-5)
        assert rms.count == pytest.approx(len(data) + 1e-4)
    # and the normalized values are (x - mean) / sqrt(var + eps), clipped to +-10
    x = next(batches(np.random.default_rng(1), 1))
    out = norm.obs(x, update=False)
    for k in x:
        rms = norm.obs_rms[k]
        want = np.clip((x[k] - rms.mean) / np.sqrt(rms.var + 1e-8), -10, 10)
        np.testing.assert_allclose(out[k], want, rtol=1e-5, atol=1e-6)


def test_clip_obs():
    norm = Normalizer(spaces.Box(-np.inf, np.inf, (2,), np.float32), n_envs=1, clip_obs=10.0)
    for _ in range(100):
        norm.obs(np.zeros((1, 2), np.float32))
    out = norm.obs(np.array([[1e6, -1e6]], np.float32), update=False)
    np.testing.assert_array_equal(out, [[10.0, -10.0]])


def test_rewards_scaled_by_running_std_of_discounted_return():
    rng = np.random.default_rng(2)
    gamma, n_envs = 0.9, 3
    norm = Normalizer(spaces.Box(-1, 1, (1,), np.float32), n_envs=n_envs, gamma=gamma, norm_obs=False)
    ret = np.zeros(n_envs)
    all_returns = []
    for _ in range(200):
        r = rng.normal(1.0, 3.0, n_envs).astype(np.float32)
        done = rng.random(n_envs) < 0.05
        scaled = norm.reward(r, done)
        ret = ret * gamma + r
        all_returns.append(ret.copy())
        var = np.concatenate(all_returns).var()
        np.testing.assert_allclose(scaled, np.clip(r / np.sqrt(var + 1e-8), -10, 10), rtol=2e-3)
        ret[done] = 0.0
    np.testing.assert_allclose(norm.ret_rms.var, np.concatenate(all_returns).var(), rtol=1e-4)


def test_frozen_statistics_do_not_move_and_rewards_pass_through_unchanged_scale():
    rng = np.random.default_rng(3)
    norm = Normalizer(DICT_SPACE, n_envs=4)
    for b in batches(rng, 10):
        norm.obs(b)
        norm.reward(rng.normal(size=4).astype(np.float32), np.zeros(4, bool))
    before = {k: (r.mean.copy(), r.var.copy(), r.count) for k, r in norm.obs_rms.items()}
    ret_before = norm.ret_rms.var
    norm.training = False
    for b in batches(rng, 10):
        norm.obs(b)
        norm.reward(rng.normal(size=4).astype(np.float32), np.zeros(4, bool))
    for k, (m, v, c) in before.items():
        np.testing.assert_array_equal(norm.obs_rms[k].mean, m)
        np.testing.assert_array_equal(norm.obs_rms[k].var, v)
        assert norm.obs_rms[k].count == c
    assert norm.ret_rms.var == ret_before


def test_statistics_round_trip_through_tensors():
    rng = np.random.default_rng(4)
    norm = Normalizer(DICT_SPACE, n_envs=4)
    for b in batches(rng, 5):
        norm.obs(b)
        norm.reward(np.ones(4, np.float32), np.zeros(4, bool))
    copy = Normalizer(DICT_SPACE, n_envs=4)
    copy.load_state_dict(norm.checkpoint_state(), with_returns=True)
    x = next(batches(rng, 1))
    for k, v in norm.obs(x, update=False).items():
        np.testing.assert_array_equal(copy.obs(x, update=False)[k], v)
    np.testing.assert_array_equal(copy.returns, norm.returns)
    assert copy.ret_rms.var == norm.ret_rms.var
