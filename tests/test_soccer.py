import numpy as np
import pytest

from deeprl.envs import soccer as S


def _scene(core, agents, angles, ball):
    core.pos[0] = np.array(agents, dtype=float)
    core.angle[0] = np.radians(angles)
    core.ball[0] = ball
    core.vel[0] = 0.0
    core.ball_vel[0] = 0.0
    core.obs[0] = 0.0
    core._put_newest(core._rays()[:1], np.array([0]))


def _newest(obs_row):
    """(14 rays, 8 values) of the newest frame of one observation."""
    fwd = obs_row[:264].reshape(3, 11, 8)[-1]
    back = obs_row[264:].reshape(3, 3, 8)[-1]
    return np.concatenate([fwd, back])


def _kind(ray):
    return int(np.argmax(ray[:6])) if ray[:6].any() else None


def test_layout_is_336_from_3_frames_of_14_rays_of_8():
    core = S.SoccerCore(3, seed=0)
    obs = core.observe()
    assert obs.shape == (3, 4, 336) and obs.dtype == np.float32
    assert S.OBS_SIZE == 3 * 14 * 8
    # at kick-off the two older frames are zeros (ML-Agents' stacking), the newest holds real readings
    assert not obs[..., :176].any()
    newest = _newest(obs[0, 0])
    assert (newest[:, :6].sum(1) + newest[:, 6] == 1).all()
    assert np.degrees(S.RAY_ANGLES[:5]).round().tolist() == [0, -12, 12, -24, 24]
    assert np.degrees(S.RAY_ANGLES[11:]).round().tolist() == [180, 135, 225]


def test_rays_in_a_hand_placed_scene():
    core = S.SoccerCore(1, seed=0)
    # blue_0 at the centre facing +x; ball 3 m ahead; teammate on the +60 degree ray; an opponent on the
    # 225 degree backward ray; the other opponent out of every ray.
    _scene(core, [(0, 0), (2, 2 * np.sqrt(3)), (-3 / np.sqrt(2), -3 / np.sqrt(2)), (-6, 4)], [0, 0, 0, 0], (3, 0))
    rays = _newest(core.observe()[0, 0])
    widen = S.CAST_RADIUS
    assert _kind(rays[0]) == S.BALL
    assert rays[0][7] == pytest.approx((3 - S.BALL_RADIUS - widen) / S.RAY_LENGTH, abs=1e-5)
    assert _kind(rays[10]) == S.TEAMMATE  # +60 degrees, the last forward ray
    assert rays[10][7] == pytest.approx((4 - S.AGENT_RADIUS - widen) / S.RAY_LENGTH, abs=1e-5)
    assert _kind(rays[13]) == S.OPPONENT  # 225 degrees
    assert rays[13][7] == pytest.approx((3 - S.AGENT_RADIUS - widen) / S.RAY_LENGTH, abs=1e-5)
    assert _kind(rays[11]) == S.OWN_GOAL  # straight back into blue's own goal mouth, 8 m away
    assert rays[11][7] == pytest.approx(8 / S.RAY_LENGTH, abs=1e-5)
    assert _kind(rays[12]) == S.WALL  # 135 degrees meets the side wall at y = 5
    assert rays[12][7] == pytest.approx(5 * np.sqrt(2) / S.RAY_LENGTH, abs=1e-5)
    assert (rays[:, 6] == 0).all()  # everything hits something inside 20 m
    # the same goal is the opposing goal for a purple player looking at it
    _scene(core, [(6, 4), (6, -4), (0, 0), (-6, -4)], [0, 0, 180, 0], (0, 4))
    rays = _newest(core.observe()[0, 2])
    assert _kind(rays[0]) == S.OPP_GOAL
    assert _kind(rays[11]) == S.OWN_GOAL


def test_nothing_hit_when_rays_are_short(monkeypatch):
    monkeypatch.setattr(S.core, "RAY_LENGTH", 0.5)  # the module whose rays read it
    core = S.SoccerCore(1, seed=0)
    _scene(core, [(0, 0), (5, 3), (5, -3), (-5, 3)], [0, 0, 0, 0], (4, 0))
    rays = _newest(core.observe()[0, 0])
    assert (rays[:, 6] == 1).all() and (rays[:, 7] == 1).all() and not rays[:, :6].any()


def test_ball_and_agents_stay_inside_the_field():
    core = S.SoccerCore(64, max_steps=300, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(300):
        core.step(rng.integers(0, 3, size=(64, 4, 3)))
        live = ~core.done
        assert (np.abs(core.pos[..., 0]) <= S.FIELD_LENGTH / 2 - S.AGENT_RADIUS + 1e-9).all()
        assert (np.abs(core.pos[..., 1]) <= S.FIELD_WIDTH / 2 - S.AGENT_RADIUS + 1e-9).all()
        assert (np.abs(core.ball[:, 1]) <= S.FIELD_WIDTH / 2 - S.BALL_RADIUS + 1e-9).all()
        assert (np.abs(core.ball[live, 0]) <= S.FIELD_LENGTH / 2 + 1e-9).all()
        # nothing enters a cut corner
        assert (np.abs(core.pos).sum(-1) <= S.core._CUT_SUM - S.AGENT_RADIUS * np.sqrt(2) + 1e-9).all()
        assert (np.abs(core.ball).sum(-1) <= S.core._CUT_SUM - S.BALL_RADIUS * np.sqrt(2) + 1e-9).all()
        # a ball past the end line is always inside a goal mouth
        past = np.abs(core.ball[:, 0]) > S.FIELD_LENGTH / 2 - S.BALL_RADIUS
        assert (np.abs(core.ball[past, 1]) <= S.GOAL_HALF_WIDTH + 1e-9).all() or not past.any()
        core.reset(core.done)


def test_ball_bounces_off_the_side_wall():
    core = S.SoccerCore(1, seed=0)
    _scene(core, [(-6, 0), (-6, 2), (6, 0), (6, 2)], [0, 0, 180, 180], (0, 4))
    core.ball_vel[0] = (0.0, 4.0)
    for _ in range(5):
        core.step(np.zeros((1, 4, 3), dtype=int))
    assert core.ball_vel[0, 1] < 0 and core.ball[0, 1] <= S.FIELD_WIDTH / 2 - S.BALL_RADIUS


def test_ball_bounces_off_a_cut_corner():
    core = S.SoccerCore(1, seed=0)
    _scene(core, [(-6, 0), (-6, 2), (-3, 0), (-3, 2)], [0, 0, 180, 180], (4, 1))
    core.ball_vel[0] = (4.0, 4.0)  # straight at the (+x, +y) cut wall, which faces back along (-1, -1)
    for _ in range(12):
        core.step(np.zeros((1, 4, 3), dtype=int))
    vx, vy = core.ball_vel[0]
    assert vx < 0 and vy < 0 and vx == pytest.approx(vy)
    assert abs(core.ball[0]).sum() <= S.core._CUT_SUM - S.BALL_RADIUS * np.sqrt(2) + 1e-9


def test_a_ball_pushed_into_a_corner_is_not_pinned_there():
    # the trap cut corners remove: an agent running into the corner behind the ball. In a square corner the
    # ball stays wedged at (7.65, 4.65); the cut wall turns it down the end wall into the goal.
    core = S.SoccerCore(1, max_steps=200, seed=0)
    _scene(core, [(5.6, 2.6), (-6, 2), (-6, -4), (-3, -4)], [45, 0, 180, 180], (6.6, 3.4))
    act = np.zeros((1, 4, 3), dtype=int)
    act[0, 0, 0] = 1  # forward
    scorer = -1
    for _ in range(200):
        _, term, trunc, sc = core.step(act)
        if term[0] or trunc[0]:
            scorer = sc[0]
            break
    assert scorer == 0  # blue scored: the ball ran along the cut wall and the end wall into purple's goal


def test_rays_see_the_cut_corners_as_walls():
    core = S.SoccerCore(1, seed=0)
    # blue_0 at the centre looking at the (+x, +y) corner (8, 5): it meets the cut wall x + y = 11 first
    _scene(core, [(0, 0), (-6, -4), (-6, 4), (-3, -4)], [np.degrees(np.arctan2(5, 8)), 0, 180, 180], (-2, -3))
    rays = _newest(core.observe()[0, 0])
    assert _kind(rays[0]) == S.WALL
    assert rays[0][7] == pytest.approx(S.core._CUT_SUM / 13 * np.hypot(8, 5) / S.RAY_LENGTH, abs=1e-5)
    # a ray rising slowly from low on the field meets the (+x, -y) cut first, though it heads up the field
    _scene(core, [(5, -4.5), (-6, -4), (-6, 4), (-3, 4)], [np.degrees(np.arctan(0.1)), 0, 180, 180], (-2, 3))
    rays = _newest(core.observe()[0, 0])
    t = (S.core._CUT_SUM - 5 - 4.5) / (1 - 0.1) * np.hypot(1, 0.1)  # where x - y = _CUT_SUM along (1, 0.1)
    assert _kind(rays[0]) == S.WALL and rays[0][7] == pytest.approx(t / S.RAY_LENGTH, abs=1e-5)


def test_goal_is_detected_exactly_once_with_the_time_penalty():
    core = S.SoccerCore(2, max_steps=100, seed=0)
    for i in range(2):
        core.pos[i] = [(-6, 3), (-6, -3), (-3, 3), (-3, -3)]
        core.vel[i] = 0.0
    core.ball[:] = [(6.0, 0.0), (-6.0, 0.5)]
    core.ball_vel[:] = [(6.0, 0.0), (-6.0, 0.0)]  # match 0 into purple's goal, match 1 into blue's
    still = np.zeros((2, 4, 3), dtype=int)
    goals, rewards = np.zeros(2, int), np.zeros((2, 4))
    for _ in range(30):
        r, term, trunc, scorer = core.step(still)
        goals += term
        rewards += r
        assert not trunc.any()
        if term.any():
            assert set(scorer[term]) <= {0, 1}
    assert goals.tolist() == [1, 1]
    assert core.done.all()
    assert rewards[0, :2] == pytest.approx(rewards[0, 0]) and 0.9 < rewards[0, 0] < 1.0
    assert rewards[0, 2:].tolist() == [-1, -1]
    assert rewards[1, :2].tolist() == [-1, -1] and 0.9 < rewards[1, 2] < 1.0


def test_time_limit_truncates_without_reward():
    core = S.SoccerCore(1, max_steps=20, seed=0)
    still = np.zeros((1, 4, 3), dtype=int)
    for _ in range(20):
        r, term, trunc, _ = core.step(still)
        assert not r.any() and not term.any()
    assert trunc[0] and core.done[0]


def test_same_seed_same_match():
    def run(seed):
        core = S.SoccerCore(4, seed=seed)
        rng = np.random.default_rng(7)
        for _ in range(50):
            core.step(rng.integers(0, 3, size=(4, 4, 3)))
        return core.observe(), core.ball.copy()

    a, b, c = run(3), run(3), run(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_pettingzoo_parallel_api():
    from pettingzoo.test import parallel_api_test

    env = S.parallel_env(max_steps=200)
    parallel_api_test(env, num_cycles=300)
    obs, infos = env.reset(seed=0)
    assert set(obs) == {"blue_0", "blue_1", "purple_0", "purple_1"}
    assert env.observation_space("blue_0").shape == (336,)
    assert env.action_space("purple_1").nvec.tolist() == [3, 3, 3]


def test_rgb_rendering_and_scripted_team_beats_random():
    env = S.parallel_env(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[0] % 16 == 0 and frame.shape[1] % 16 == 0
    r = S.play_matches(S.ScriptedTeam(), S.RandomTeam(0), 40, seed=0)
    assert r["wins"] + r["draws"] + r["losses"] == 40
    assert r["wins"] > 2 * r["losses"]
    assert 0 <= r["own_goals"] <= r["losses"] and 0 <= r["opponent_own_goals"] <= r["wins"]


class StillAgent:
    """An agent that never moves, for the registry's team env."""

    env_id, env_kwargs, config = "SoccerTwos", {"max_steps": 150}, {}

    def act(self, obs, deterministic=True):
        return np.zeros(np.asarray(obs).shape[:-1] + (3,), dtype=int)


def test_registry_team_env_is_evaluated_against_the_scripted_team():
    from deeprl.envs import env_tag, make_env
    from deeprl.evaluation import evaluate

    assert env_tag("SoccerTwos") == "ML-Agents-SoccerTwos"
    env = make_env("SoccerTwos", {"max_steps": 150})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 336)
    result = evaluate(StillAgent(), n_eval_episodes=4)
    assert result["env_tag"] == "ML-Agents-SoccerTwos"
    assert all(r in (-1.0, 0.0) or 0 < r < 1 for r in result["episode_rewards"])
    assert result["mean_reward"] < 0  # standing still loses to the scripted team
