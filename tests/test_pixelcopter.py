"""Pixelcopter-PLE-v0: PLE's physics and rules, seeding, rendering, and Gymnasium's env checker."""

import warnings

import numpy as np
import pytest

from deeprl.envs import make_env
from deeprl.envs.pixelcopter import ACTION_NOOP, ACTION_UP, DT, PixelcopterEnv
from deeprl.errors import UserError


def play(env, policy, seed, max_steps=10_000):
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(max_steps):
        obs, r, terminated, truncated, _ = env.step(policy(obs))
        observations.append(obs)
        rewards.append(r)
        if terminated or truncated:
            return np.array(observations), np.array(rewards), terminated
    return np.array(observations), np.array(rewards), False


def corridor_pilot(o):
    """A hand-written controller: hold the middle of the cave, and slip above or below the next block."""
    y, vel, to_ceil, to_floor, block_dist, block_y = o[:6]
    ceil, floor = y - to_ceil, y + to_floor
    mid = (ceil + floor) / 2
    if block_dist < 30:  # PLE's block rect spans centre - 4 .. centre + 5 (9 px tall at 48 x 48)
        target = (ceil + block_y - 4) / 2 if block_y > mid else (block_y + 5 + floor) / 2
    else:
        target = mid
    return ACTION_UP if y + 4 * vel > target else ACTION_NOOP


def test_spaces_and_first_observation_follow_ple():
    env = make_env("Pixelcopter-PLE-v0")
    assert env.action_space.n == 2
    assert env.observation_space.shape == (7,)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs in env.observation_space
    y, vel, to_ceil, to_floor, block_dist, block_top, block_bottom = obs
    assert y == 24.0 and vel == 0.0  # HelicopterPlayer starts mid-height at rest
    assert to_ceil + to_floor == pytest.approx(24.0)  # the gap is +-25 % of the height around the terrain centre
    assert 48 - 16 <= block_dist < 72 - 16  # blocks enter 1..1.5 screens right; the player sits at x = 16
    assert block_bottom - block_top == 9  # PLE reports top + int(0.2 * 48)


def test_physics_constants_match_ple():
    env = PixelcopterEnv()
    env.reset(seed=1)
    speed = 0.0004 * 48
    obs, *_ = env.step(ACTION_NOOP)  # gravity: speed * 0.09 per ms, then momentum *= 0.99
    assert obs[1] == pytest.approx(speed * 0.09 * DT * 0.99, rel=1e-6)
    env.reset(seed=1)
    obs, *_ = env.step(ACTION_UP)  # thrust: speed * -0.875 per ms
    assert obs[1] == pytest.approx(speed * -0.875 * DT * 0.99, rel=1e-6)
    assert obs[0] == pytest.approx(24.0 + speed * -0.875 * DT * 0.99, rel=1e-6)
    before = env.unwrapped.blocks[0][0]
    env.step(ACTION_NOOP)
    assert before - env.unwrapped.blocks[0][0] == pytest.approx(speed * DT)  # 0.64 px a frame at 30 fps


def test_noop_policy_falls_and_dies():
    env = make_env("Pixelcopter-PLE-v0")
    obs, rewards, terminated = play(env, lambda o: ACTION_NOOP, seed=0)
    assert terminated
    assert len(rewards) < 60
    assert np.all(np.diff(obs[:, 0]) > 0)  # it only ever falls
    assert obs[-1, 3] <= 0 or obs[-1, 0] > 48 * 0.875  # it reached the floor
    assert rewards[-1] <= -4.0  # PLE's loss reward, -5 (plus any column that scrolled off that frame)
    assert rewards.sum() < 0


def test_always_up_hits_the_ceiling():
    env = make_env("Pixelcopter-PLE-v0")
    obs, rewards, terminated = play(env, lambda o: ACTION_UP, seed=3)
    assert terminated and len(rewards) < 20
    assert obs[-1, 2] <= 48 * 0.05 or obs[-1, 0] < 48 * 0.125
    assert rewards[-1] == -5.0


def test_collision_with_a_block_terminates():
    env = PixelcopterEnv()
    env.reset(seed=0)
    # put the block where the player will be after this frame's scroll
    env.blocks = [[env.player_x + env.scroll, env.y]]
    obs, reward, terminated, truncated, _ = env.step(ACTION_NOOP)
    assert terminated and not truncated
    assert reward == -5.0 + 1.0  # the block also reached the player's x: PLE scores it in the same frame
    # a finished game stays finished and pays nothing, as PLE._oneStepAct
    assert env.step(ACTION_UP)[1:3] == (0.0, True)


def test_observations_stay_finite_and_rewards_are_ples():
    env = make_env("Pixelcopter-PLE-v0")
    rng = np.random.default_rng(0)
    for seed in range(10):
        obs, rewards, terminated = play(env, lambda o: int(rng.random() < 0.3), seed=seed)
        assert np.isfinite(obs).all() and terminated
        assert set(np.unique(rewards)) <= {0.0, 1.0, 2.0, -5.0, -4.0, -3.0}
    obs, rewards, terminated = play(env, corridor_pilot, seed=4)
    assert np.isfinite(obs).all()
    assert rewards.sum() > 5  # a competent pilot scores: +1 per terrain column and per block passed
    assert all(o in env.observation_space for o in obs)


def test_terrain_stays_ordered_and_refills():
    env = PixelcopterEnv()
    env.reset(seed=2)
    env.y = 24.0
    for _ in range(2000):
        # keep the copter alive by pinning it mid-cave, so the world scrolls for a long time
        env.y, env.momentum, env.lives = float(np.mean(env.ty[:8])), 0.0, 1.0
        env.blocks = [[b[0], 100.0] for b in env.blocks]
        env.step(ACTION_NOOP)
        assert all(a < b for a, b in zip(env.tx, env.tx[1:]))
        assert 13 <= len(env.tx) <= 61
        assert env.tx[0] > -env.terrain_w and env.tx[-1] > 40
        assert all(18 <= y <= 30 for y in env.ty)  # 24 +- 12.5 % of 48


def test_same_seed_same_episode_and_seeds_differ():
    def trace(seed):
        env = make_env("Pixelcopter-PLE-v0")
        rng = np.random.default_rng(7)
        return play(env, lambda o: int(rng.random() < 0.25), seed=seed)

    a, b, c = trace(11), trace(11), trace(12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_time_limit_and_kwargs():
    env = make_env("Pixelcopter-PLE-v0", {"max_episode_steps": 5})
    env.reset(seed=0)
    for _ in range(4):
        assert env.step(ACTION_NOOP)[3] is False
    assert env.step(ACTION_NOOP)[3] is True
    env = make_env("Pixelcopter-PLE-v0", {"reward_values": {"loss": -1.0}})
    _, rewards, _ = play(env, lambda o: ACTION_UP, seed=3)
    assert rewards[-1] == -1.0
    with pytest.raises(UserError):
        make_env("Pixelcopter-PLE-v0", {"width": 5})
    with pytest.raises(UserError):
        make_env("Pixelcopter-PLE-v0", {"reward_values": {"bonus": 3}})


def test_render_rgb_array():
    env = make_env("Pixelcopter-PLE-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    assert (frame == 255).all(axis=2).sum() == 4  # the 2 x 2 white copter
    green = (frame == (120, 240, 80)).all(axis=2)
    assert green[0].all() and green[-1].all() and not green[24].any()  # walls at top and bottom, open middle
    env.step(ACTION_NOOP)
    big = make_env("Pixelcopter-PLE-v0", {"render_scale": 4}, render_mode="rgb_array")
    big.reset(seed=0)
    assert big.render().shape == (192, 192, 3)


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns that an unbounded Box is "probably too high": PLE's is unbounded
        check_env(PixelcopterEnv(render_mode="rgb_array"))


def test_other_sizes_scale_ples_constants():
    env = PixelcopterEnv(width=64, height=64)
    obs, _ = env.reset(seed=0)
    assert (env.player_x, env.block_w, env.block_h, env.terrain_w) == (22, 6, 12, 6)
    assert obs[0] == 32.0 and obs[6] - obs[5] == 12
    for _ in range(1500):  # pinned mid-cave: at 64 x 64 PLE's refills overlap the old columns, and still work
        env.y, env.momentum, env.lives = float(np.mean(env.ty[:8])), 0.0, 1.0
        env.blocks = [[b[0], 1000.0] for b in env.blocks]
        obs, reward, terminated, _, _ = env.step(ACTION_NOOP)
        assert np.isfinite(obs).all() and not terminated and 13 <= len(env.tx)
        assert min(env.tx) > -env.terrain_w
