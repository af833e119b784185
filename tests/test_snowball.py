import math

import numpy as np
import pytest

from deeprl.envs import snowball as S


class RandomAgent:
    """What evaluate and record need of an agent: its env and an action per observation."""

    env_id, env_kwargs = "SnowballTarget", {"max_decisions": 40}

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act(self, obs, deterministic=True):
        return self.rng.integers([3, 2])


def _aim(core):
    """A scripted marksman: turn towards the target, shoot when a snowball would hit it."""
    bearing = np.arctan2(core.target[:, 1], core.target[:, 0])
    err = (bearing - core.angle + np.pi) % (2 * np.pi) - np.pi
    turn = np.where(np.abs(err) < S.TURN_SPEED * S.DT / 2, 0, np.where(err > 0, 1, 2))
    dist = np.linalg.norm(core.target, axis=1)
    shoot = (np.abs(err) < np.arctan((S.TARGET_RADIUS + S.BALL_RADIUS) / dist)) & core.target_alive
    return np.stack([turn, shoot.astype(int)], axis=1)


def test_layout_is_137_floats():
    core = S.SnowballCore(3, seed=0)
    obs = core.observe()
    assert obs.shape == (3, 137) and obs.dtype == np.float32
    rays = obs[:, :136].reshape(3, 34, 4)
    assert (rays[..., :2].sum(-1) + rays[..., 2] == 1).all()
    assert (obs[:, -1] == 1).all()  # can shoot at the start
    assert (rays[..., 0].any(axis=1)).all()  # the wide sensor always shows the target somewhere


def test_rays_see_the_target_ahead_and_the_wall_behind():
    core = S.SnowballCore(1, seed=0)
    core.angle[0], core.target[0] = 0.0, (10.0, 0.0)
    rays = core.rays()[0]
    centre = rays[S.N_WIDE + 5]  # the narrow sensor's middle ray
    assert centre[0] == 1 and centre[3] == pytest.approx((10.0 - 1.0 - 0.25) / 25)
    back = rays[0]  # the wide sensor's leftmost ray, 165 degrees round: the arena's wall
    assert back[1] == 1 and back[3] == pytest.approx((20.0 - 1.0) / 25)


def test_one_hit_is_plus_one_and_the_cooldown_is_half_a_second():
    core = S.SnowballCore(1, seed=0)
    core.angle[0], core.target[0] = 0.0, (10.0, 0.0)
    rewards, can_shoot = [], []
    for _ in range(12):
        r, term, trunc = core.step(np.array([[0, 1]]))
        rewards.append(float(r[0]))
        can_shoot.append(bool(core.observe()[0, -1]))
    assert sum(rewards) == 1.0 and rewards.index(1.0) == 4  # fired at 0.6 m, 20 m/s: reaches 8.75 m in 5 steps
    assert can_shoot[:5] == [False] * 4 + [True]  # 5 decisions = 0.5 s until the next shot
    assert not core.target_alive[0] and core.respawn[0] > 0  # popped; the next one comes 1 s later


def test_missing_scores_nothing_and_episodes_last_1000_decisions():
    core = S.SnowballCore(2, seed=1)
    total = np.zeros(2)
    for _ in range(1000):
        core.target[:] = (0.0, -10.0)  # always behind a still agent that keeps shooting ahead
        core.angle[:] = math.pi / 2
        r, term, trunc = core.step(np.array([[0, 1], [0, 0]]))
        total += r
    assert (total == 0).all() and trunc.all() and not term.any()


def test_a_scripted_marksman_hits_the_course_scale():
    core = S.SnowballCore(8, seed=2)
    total = np.zeros(8)
    while not core.done.all():
        r, _, _ = core.step(_aim(core))
        total += r
    assert 30 <= total.mean() <= 50, total


def test_gym_env_evaluate_and_replay(tmp_path):
    from deeprl.envs import make_env
    from deeprl.evaluation import evaluate
    from deeprl.video import probe, record

    env = make_env("SnowballTarget")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and list(env.action_space.nvec) == [3, 2]
    res = evaluate(RandomAgent(), n_eval_episodes=3)
    assert res["n_eval_episodes"] == 3 and res["episode_lengths"] == [40, 40, 40]
    img = make_env("SnowballTarget", render_mode="rgb_array")
    img.reset(seed=0)
    frame = img.render()
    assert frame.dtype == np.uint8 and frame.shape[0] % 16 == 0 and frame.shape[1] % 16 == 0
    out = record(RandomAgent(), tmp_path / "replay.mp4")
    assert out["frames"] == 41 and probe(tmp_path / "replay.mp4")
