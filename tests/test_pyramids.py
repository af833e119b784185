import numpy as np
import pytest

from deeprl.envs import pyramids as P


class RandomAgent:
    """What evaluate and record need of an agent: its env and an action per observation."""

    env_id, env_kwargs = "Pyramids", {"max_decisions": 30}

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def act(self, obs, deterministic=True):
        return int(self.rng.integers(5))


def _scene(agent=(0.0, 0.0), angle=0.0, switch=(-40.0, -40.0), pyramid=(30.0, 30.0)):
    """One arena with the agent and the switch where given; stones out of sight in the far corners."""
    core = P.PyramidsCore(1, seed=0)
    core.pos[0], core.angle[0], core.vel[0] = agent, np.radians(angle), 0.0
    core.switch[0] = core.obj_xy[0, P.SWITCH_SLOT] = switch
    core.pyramid_at[0] = pyramid
    core.stones[0] = [(-43.0, 43.0)] * P.N_STONES
    core.obj_xy[0, P.STONE_SLOTS] = core.stones[0]
    return core


def _ray(core, sensor, k=3):
    """(tag or None, fraction) of ray k (3: the centre) of a sensor (0: 70, 1: 65, 2: 75 degrees)."""
    r = core.rays()[0, sensor * 7 + k]
    return (P.TAGS[int(np.argmax(r[:6]))] if r[:6].any() else None), float(r[7])


def test_layout_is_172_floats():
    core = P.PyramidsCore(4, seed=1)
    obs = core.observe()
    assert obs.shape == (4, 172) and obs.dtype == np.float32
    rays = obs[:, :168].reshape(4, 21, 8)
    assert (rays[..., :6].sum(-1) + rays[..., 6] == 1).all()  # one tag or the miss flag, per ray
    assert np.degrees(P.RAY_ANGLES[:7]).round().tolist() == [70, 47, 23, 0, -23, -47, -70]
    assert np.degrees(P.RAY_ANGLES[14:]).round().tolist() == [75, 50, 25, 0, -25, -50, -75]
    assert (obs[:, 168] == 0).all()  # switch off at the start


def test_reset_uses_nine_distinct_areas():
    core = P.PyramidsCore(50, seed=3)
    spots = np.concatenate([core.pos[:, None], core.switch[:, None], core.pyramid_at[:, None], core.stones], axis=1)
    area = np.abs(spots[..., None, :] - P.AREA_CENTRES).max(-1).argmin(-1)  # (50, 9)
    assert all(len(set(row)) == 9 for row in area)
    assert (np.abs(spots - P.AREA_CENTRES[area]) <= P.AREA_SIZE / 2.1).all()


def test_ray_sees_a_wall_at_its_distance():
    core = _scene(agent=(40.0, 0.0), angle=0.0)  # facing the outer wall, whose face is at x = 49.5
    tag, frac = _ray(core, 0)
    assert tag == "wall" and frac == pytest.approx((P.HALF - 40.0) / 35)
    # the steepest sensor rises 10 m over 35: 9.5 m away it is still below the 5 m wall
    assert _ray(core, 2)[0] == "wall"
    far = _scene(agent=(20.0, 0.0), angle=0.0)  # the wall 29.5 m away: the raised ray passes over it
    assert _ray(far, 0) == ("wall", pytest.approx((P.HALF - 20.0) / 35))
    assert _ray(far, 2) == (None, 1.0)


def test_interior_walls_split_the_floor_into_rooms():
    """AreaPB's cruciform and side walls: a ray meets them (widened by the 0.5 m cast), the steep ray passes over
    their 4.5 m top further away, and the agent cannot drive through one but can through a gap."""
    core = _scene(agent=(30.0, 20.0), angle=180.0)  # facing -x along y = 20, the cross arm x = 16.55 in 12.95 m
    assert _ray(core, 0) == ("wall", pytest.approx((30.0 - 17.05 - 0.5) / 35))
    assert _ray(core, 2)[0] == "wall"  # 12.45 m away the 10 m-a-35 m ray is at 4.1 m, below 4.5 + 0.5
    far = _scene(agent=(40.0, 20.0), angle=180.0)  # 22.45 m: the steep ray passes over it
    assert _ray(far, 0)[0] == "wall" and _ray(far, 2)[0] != "wall"
    gap = _scene(agent=(30.0, 0.0), angle=180.0)  # y = 0 runs through the middle gap of x = 16.55 and x = -16.55
    assert _ray(gap, 0) == (None, 1.0)
    # drive into the wall: the agent stops at its face; along the gap it goes through
    for start, through in (((25.0, 20.0), False), ((25.0, 0.0), True)):
        c = _scene(agent=start, angle=180.0)
        for _ in range(12):
            c.step(np.array([1]))
        assert (c.pos[0, 0] < 16.0) == through, c.pos[0]
        if not through:
            assert c.pos[0, 0] == pytest.approx(17.05 + P.AGENT_RADIUS, abs=1e-6) and c.vel[0, 0] >= 0.0
    # every spawn is clear of the walls, the pyramid's bricks included
    many = P.PyramidsCore(200, seed=5)
    assert not P.push_out_of_walls(many.pos, P.AGENT_RADIUS)[1].any()
    assert not P.push_out_of_walls(many.pyramid_at, P.PYRAMID_CLEARANCE - 1e-6)[1].any()
    assert not P.push_out_of_walls(many.switch, P.SWITCH_RADIUS - 1e-6)[1].any()
    assert not P.push_out_of_walls(many.stones.reshape(-1, 2), P.STONE_RADIUS - 1e-6)[1].any()


def test_rays_see_bricks_low_and_the_gold_brick_high():
    core = _scene(pyramid=(10.0, 0.0))
    assert _ray(core, 0)[0] != "block"  # no pyramid before the switch
    core.build_pyramid(0)
    tag, frac = _ray(core, 0)  # flat ray: the front brick's face (centre 9 m, widened by the 0.5 m cast)
    assert tag == "block" and frac == pytest.approx(8.0 / 35)
    tag, frac = _ray(core, 2)  # rising ray: over the lower layers, onto the gold brick
    assert tag == "goal" and frac == pytest.approx(9.0 / 35)


def test_switch_before_and_after_pressing_builds_exactly_one_pyramid():
    core = _scene(switch=(6.0, 0.0))
    # its 4 m cube's near face, 2 m before its centre, widened by the 0.5 m cast
    assert _ray(core, 0) == ("switchOff", pytest.approx((6.0 - P.SWITCH_RADIUS - P.CAST_RADIUS) / 35))
    assert not core.built[0] and core.observe()[0, 168] == 0
    for _ in range(10):  # drive into the switch, then keep pushing against it
        core.step(np.array([1]))
    assert core.switch_on[0] and core.built[0] and core.builds[0] == 1
    assert _ray(core, 0)[0] == "switchOn"
    assert core.observe()[0, 168] == 1
    for action in [2] * 5 + [1] * 10:  # back off and touch it again: still one pyramid
        core.step(np.array([action]))
    assert core.builds[0] == 1
    assert np.allclose(core.brick_pos[0, :, :2].mean(0), core.pyramid_at[0], atol=0.5)


def test_touching_the_gold_brick_ends_the_episode_with_plus_two():
    core = _scene(pyramid=(20.0, 0.0))
    core.build_pyramid(0)
    core.brick_pos[0, P.GOLD] = (2.0, 0.0, 0.5)  # a toppled pyramid's gold brick on the floor ahead
    core._sync_bricks(np.array([0]))
    total, ended = 0.0, False
    for _ in range(10):
        r, term, trunc = core.step(np.array([1]))
        total += float(r[0])
        if term[0]:
            ended = True
            break
    assert ended and r[0] == pytest.approx(2.0) and not trunc[0]
    assert core.done[0] and not core.worlds  # its PyBullet world went back to the pool


def test_the_agent_rests_on_the_floor_at_its_height_and_touches_a_gold_brick_on_a_layer_of_bricks():
    # PyBullet sets the agent's pose each step (it turns kinematically); in whole 0.02 s steps that let it sink 12 cm,
    # and a gold brick resting on one layer of bricks (its bottom at 1 m) was then out of its reach
    core = _scene(pyramid=(20.0, 0.0))
    core.build_pyramid(0)
    core.brick_pos[0] = (0.0, 0.0, -100.0)  # the other bricks far away; a brick under the gold one, 3 m ahead
    core.brick_pos[0, 0] = (3.0, 0.0, 0.5)
    core.brick_pos[0, P.GOLD] = (3.0, 0.0, 1.5)
    core._sync_bricks(np.array([0]))
    core.step(np.array([0]))  # engaged: the agent is in PyBullet now, standing still
    world = core.worlds[0]
    for _ in range(10):
        core.step(np.array([0]))
    z = world.pb.getBasePositionAndOrientation(world.agent, physicsClientId=world.cid)[0][2]
    assert z == pytest.approx(0.5, abs=0.01)
    for _ in range(10):
        r, term, _ = core.step(np.array([1]))
        if term[0]:
            break
    assert term[0] and r[0] == pytest.approx(2.0)


def test_ramming_the_pyramid_brings_the_gold_brick_down():
    core = _scene(agent=(0.0, 0.0), pyramid=(8.0, 0.3))
    core.build_pyramid(0)
    gold_z = []
    for k in range(60):
        core.step(np.array([1 if k < 25 else 2]))
        gold_z.append(core.brick_pos[0, P.GOLD, 2])
        if core.done[0]:
            break
    assert min(gold_z) < 2.0 or core.done[0]  # off the top layer (2.5 m) at least: the pyramid toppled


def test_time_penalty_and_truncation():
    core = P.PyramidsCore(2, max_decisions=1000, seed=0)
    core.switch[:] = core.obj_xy[:, P.SWITCH_SLOT] = (44.0, 44.0)  # out of reach of a still agent
    total = np.zeros(2)
    for _ in range(1000):
        r, term, trunc = core.step(np.zeros(2, dtype=int))
        total += r
        assert not term.any()
    assert trunc.all() and total == pytest.approx([-1.0, -1.0], abs=1e-4)
    r, term, trunc = core.step(np.zeros(2, dtype=int))  # frozen until reset
    assert (r == 0).all() and not (term | trunc).any()


def test_gym_env_evaluate_and_replay(tmp_path):
    from deeprl.envs import make_env
    from deeprl.evaluation import evaluate

    env = make_env("Pyramids", {"max_decisions": 30})
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and env.action_space.n == 5

    res = evaluate(RandomAgent(), n_eval_episodes=3)
    assert res["n_eval_episodes"] == 3 and res["env_id"] == "Pyramids"
    assert res["mean_reward"] == pytest.approx(-0.03, abs=1e-4)
    frame = make_env("Pyramids", render_mode="rgb_array")
    frame.reset(seed=0)
    img = frame.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[0] % 16 == 0 and img.shape[1] % 16 == 0
    from deeprl.video import probe, record

    out = record(RandomAgent(), tmp_path / "replay.mp4")
    assert out["frames"] == 31 and probe(tmp_path / "replay.mp4")


def test_speed_is_what_drag_and_friction_allow():
    """No cap but Unity's: driving forward, the push (2 m/s a physics step), friction and drag 2 balance at ~47 m/s;
    let go, the agent slides to a stop."""
    core = _scene(agent=(-44.0, 0.0), angle=0.0, switch=(-40.0, 40.0))
    core.step(np.array([1]))
    first = core.vel[0, 0]
    assert 8.0 < first < 10.0  # five pushes of 2 m/s, less drag and friction
    for _ in range(17):
        core.step(np.array([1]))
    assert core.vel[0, 0] == pytest.approx(P.TOP_SPEED, rel=0.05) and 45.0 < P.TOP_SPEED < 50.0
    assert core.observe()[0, -1] == pytest.approx(core.vel[0, 0])  # forward speed in the agent's frame
    for _ in range(20):
        core.step(np.array([0]))
    assert core.vel[0, 0] == 0.0 and core.pos[0, 0] < P.HALF - 1.0  # stopped by the floor, short of the wall
