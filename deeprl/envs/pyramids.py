"""Pyramids (Unit 5): ML-Agents' Pyramids scene, re-built natively over numpy arrays, with PyBullet for the bricks.

Unity and `mlagents` cannot run here, so this re-creates the scene from ML-Agents' source
(`Project/Assets/ML-Agents/Examples/Pyramids`: `PyramidAgent.cs`, `PyramidArea.cs`, `PyramidSwitch.cs` and the
`AreaPB` prefab), faithful in what the agent senses and may do:

- Arena (`AreaPB.prefab`'s colliders): a 99 x 99 m floor inside outer walls 5 m high (faces at +-49.5), split into
  3 x 3 rooms by interior walls 4.5 m high and 1 m thick on the lines x, y = +-16.55: four crosses (two 15 m arms
  each) centred at (+-16.55, +-16.55), and eight side walls reaching 14.5 m in from the outer walls. Neighbouring
  rooms join through gaps of 11 m (side wall to cross) and 18 m (between two crosses, the middle of each line).
  9 spawn areas (25 x 25 m), one per room, centres at x, y in {-30, 0, 30}. Each episode shuffles them: the agent
  goes in area 0 (random heading), the switch in area 1, the pyramid's place is area 2, and areas 3-8 each get a
  decoy stone pyramid. Objects are placed uniformly within +-25 / 2.1 m of their area's centre
  (`PyramidArea.PlaceObject`), then moved clear of a wall they would stand in (by at most 1.3 m; PyBullet would
  throw bricks that start inside a wall across the room).
- Sizes: the `Switch` object's collider is a 4 m cube (a disc of radius 2 m, 4 m high here). Stone pyramids
  (`StonePyramid.prefab`): 1 m cubes stacked 4 x 4, 3 x 3, 2 x 2 and 1, a 4.6 m wide and 4 m high heap (a disc of
  radius 2.3 m, 4 m high here; Unity's cubes are 50 kg rigid bodies the agent can barely shove, ours do not move).
- Switch: touching it while off builds the pyramid at area 2 and turns its tag from `switchOff` to `switchOn`
  (`PyramidSwitch.OnCollisionEnter`); it builds one pyramid per episode, however often it is touched.
- Pyramid: bricks (tag `block`) in layers of 3 x 3 and 2 x 2 with the gold brick (tag `goal`) on top, 1 m
  cubes. The agent cannot reach the gold brick until it knocks the pyramid over; touching the gold brick gives
  +2 (ML-Agents' `SetReward(2f)`, which replaces the decision's time penalty) and ends the episode.
- Actions: Discrete(5): 0 no-op, 1 forward, 2 backward, 3 turn left, 4 turn right. Each decision is held for
  `DECISION_PERIOD` = 5 physics steps of 0.02 s (`DecisionRequester` period 5, actions between decisions), as in
  `MoveAgent`: a velocity change of 2 m/s along the heading per physics step, turning at 200 degrees/s.
- Speed: nothing caps it but what caps a Unity rigid body: the Rigidbody's drag 2 (PhysX keeps v / (1 + 2 dt) of the
  velocity each step) and the floor's friction (Unity's default 0.6: 0.6 g dt = 0.12 m/s a step). Driving forward,
  push, friction and drag balance at `TOP_SPEED` = 47 m/s (4.7 m a decision; 95 % of it 1.6 s after the start); let
  go, the agent slides to a stop in about 1.5 s. An earlier version capped the speed at 8 m/s, a number of its own: to
  stop a 2 m/s-a-step push there would take a friction coefficient of 8.6, where Unity's run from 0 to 1; it made the
  scene 6 times larger in decisions than Unity's. How hard the scene is (benchmarks/bench_unit5.py scripted, chain
  and train): a scripted agent that knows where everything is and goes from room to room through the gaps' middles
  needs 100 decisions (mean return 1.81, the gold brick in 97 % of episodes); a persistent random walk presses the
  switch in 17 % and never reaches the gold brick; PPO + RND (PyramidsRND.yaml, RND normalized as in the RND paper,
  1M steps, seeds 0-4) then plays 128 sampled episodes at 1.20, 1.48, 1.50, -0.83 and 1.51 (the gold brick in 83, 92,
  93, 8 and 93 %; seed 3 seldom finds its way from the switch to the pyramid). Before PyBullet stepped in parts
  (BULLET_SUBSTEPS), the sunken agent could not touch a gold brick left on a layer of bricks: seed 2's policy played
  at 85 % and 1.19 (91 % and 1.35 in the fixed scene), and seed 4 never learned. An earlier version
  of this scene, without the interior walls and with a 1 m switch and 3 m stones (sizes then unread from the
  prefab), was easier to search: PPO + RND scored 1.58 there at 1M steps; with the walls but the 1 m switch, -0.55.
- Reward: -1/5000 per physics step (-0.001 per decision), +2 and the end on touching the gold brick; the episode
  is truncated after 5,000 physics steps (1,000 decisions), so a timeout returns -1.
- Observation (172 float32): three ray sensors of 7 rays each (`RaysPerDirection` 3), cones of +-70, +-65 and +-75
  degrees, ray length 35, sphere casts of radius 0.5, their ends raised by 0, 5 and 10 m (`EndVerticalOffset`:
  the upper rays see the gold brick on top of a pyramid and pass over the walls far away). Each ray gives 8
  values, as `RayPerceptionSensor` writes them: a one-hot over the tags (block, wall, goal, switchOff,
  switchOn, stone), a miss flag (1 when nothing was hit) and the hit distance as a fraction of the ray (1 on a
  miss). Rays run left to right within a sensor (newer ML-Agents' order); the sensors come in the order
  70, 65, 75. Then the switch state (1 on) and the agent's velocity in its own frame (right, up, forward; m/s).

Physics, and why it is split. The agent, the walls, the switch and the stone pyramids are simple shapes on a
flat floor, so the numpy core steps them for every arena at once (discs against discs and walls); this is what
makes many arenas per process cheap. The bricks are real rigid bodies: once an arena's pyramid exists and its
agent comes near it (or a brick may still be moving), that arena is simulated in a PyBullet world (the bricks,
the agent as a 25 kg box pushed by the same velocity changes, the floor and walls, 0.02 s steps as Unity); the
bricks' poses go back to the arrays when the agent leaves. Worlds come from a small pool and are reused, so
PyBullet runs only for the arenas where a brick can move, a small part of an episode.

Choices the sources do not fix (UNVERIFIED, chosen here): the pyramid of bricks (its prefab is not in the read
sources; a fork's `BrickPyramid.prefab` stacks 2 kg bricks as the stone pyramid, 4 x 4 at the bottom) is 14 bricks of
2 kg; sensors start 0.5 m above the floor; the floor's friction 0.6
(Unity's default material; the prefab names none). In the ray casts a brick is a disc of radius 0.5 between its
bottom and top (its tilt is ignored), the walls are boxes widened by the cast's radius (square corners), and the
agent is a disc of radius 0.5 against the switch, the stones and the walls.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from deeprl.envs.arena import ArenaEnv, draw_disc, pixel_grid

# Scene (metres, seconds)
AREA_CENTRES = np.array([(x, y) for y in (-30.0, 0.0, 30.0) for x in (-30.0, 0.0, 30.0)])
AREA_SIZE = 25.0
SPAWN_RANGE = AREA_SIZE / 2.1
HALF = 49.5  # the outer walls' inner faces at +-HALF (AreaPB's OuterWalls: 1 m thick, centred at +-50)
WALL_HEIGHT = 5.0  # the outer walls' top above the floor
ROOM_LINE = 16.55  # the interior walls stand on the lines x, y = +-ROOM_LINE (CruciformWall, SideWall1-8)
INNER_WALL_HEIGHT = 4.5
CROSS_ARM = 7.5  # each cruciform wall: two 15 m x 1 m boxes crossing at (+-ROOM_LINE, +-ROOM_LINE)
SIDE_WALL = 14.5  # each side wall: 14.5 m x 1 m from an outer wall inward, on a room line
AGENT_RADIUS = 0.5
SWITCH_RADIUS, SWITCH_HEIGHT = 2.0, 4.0  # the Switch's 4 m cube collider (AreaPB), taken as a disc
STONE_RADIUS, STONE_HEIGHT = 2.3, 4.0  # StonePyramid: 1 m cubes in layers of 4 x 4 to 1, 4.6 m wide
N_STONES = 6
BRICK = 1.0  # edge of a brick
BRICK_MASS = 2.0
AGENT_MASS = 25.0
# brick centres relative to the pyramid's place: 3 x 3, then 2 x 2, then the gold brick (last)
BRICK_LAYOUT = np.array(
    [(x, y, 0.5) for x in (-1.0, 0.0, 1.0) for y in (-1.0, 0.0, 1.0)]
    + [(x, y, 1.5) for x in (-0.5, 0.5) for y in (-0.5, 0.5)]
    + [(0.0, 0.0, 2.5)]
)
N_BRICKS = len(BRICK_LAYOUT)
GOLD = N_BRICKS - 1
PYRAMID_CLEARANCE = 2.2  # the pyramid's footprint (3 x 3 bricks) is kept this far from the walls' faces


def _inner_walls() -> np.ndarray:
    """(16, 4) float32 boxes (x0, x1, y0, y1) of AreaPB's interior walls, 1 m thick: four crosses at the corners
    of the middle room, and on each room line two side walls reaching in from the outer walls. They split the
    floor into 3 x 3 rooms, one per spawn area, joined by gaps of 11 m (between a side wall and a cross) and 18 m
    (between two crosses)."""
    boxes = []
    for cx in (-ROOM_LINE, ROOM_LINE):
        for cy in (-ROOM_LINE, ROOM_LINE):
            boxes += [
                (cx - CROSS_ARM, cx + CROSS_ARM, cy - 0.5, cy + 0.5),
                (cx - 0.5, cx + 0.5, cy - CROSS_ARM, cy + CROSS_ARM),
            ]
    for line in (-ROOM_LINE, ROOM_LINE):
        for end in (-1.0, 1.0):
            a, b = sorted((end * (HALF - SIDE_WALL), end * HALF))
            boxes += [(line - 0.5, line + 0.5, a, b), (a, b, line - 0.5, line + 0.5)]
    return np.array(boxes, dtype=np.float32)


INNER_WALLS = _inner_walls()

DT = 0.02
DECISION_PERIOD = 5
# PyBullet divides each 0.02 s physics step into this many (numSubSteps). The agent turns kinematically: its pose is
# set once a step, and Bullet, which then starts the step's contacts afresh, let the 25 kg box settle 12 cm into the
# floor in whole steps (and the bricks it pushed 8 cm). Its top (0.88 m) then passed under a gold brick lying on one
# layer of bricks (its bottom at 1 m): trained agents stood beside it to the episode's end. PhysX rests a box on the
# floor at its height; four parts do too (within 6 mm), at 1.5 times PyBullet's cost, which runs only near the bricks.
BULLET_SUBSTEPS = 4
MAX_STEPS = 5000  # physics steps (ML-Agents' MaxStep)
MAX_DECISIONS = MAX_STEPS // DECISION_PERIOD
TURN_SPEED = math.radians(200.0)
PUSH = 2.0  # velocity change per physics step (ForceMode.VelocityChange)
DRAG_KEEP = 1.0 / (1.0 + 2.0 * DT)  # PhysX damping with Rigidbody drag 2
FRICTION = 0.6  # Unity's default dynamic friction (the prefab names no physic material)
FRICTION_DV = FRICTION * 9.81 * DT  # speed a sliding agent loses to the floor per physics step
TOP_SPEED = (PUSH - FRICTION_DV) * DRAG_KEEP / (1.0 - DRAG_KEEP)  # 47 m/s, where push, friction and drag balance
STEP_PENALTY = -1.0 / MAX_STEPS
GOAL_REWARD = 2.0

# Sensors
TAGS = ("block", "wall", "goal", "switchOff", "switchOn", "stone")
BLOCK, WALL, GOAL, SWITCH_OFF, SWITCH_ON, STONE = range(len(TAGS))
N_TAGS = len(TAGS)
RAY_VALUES = N_TAGS + 2
RAY_LENGTH = 35.0
CAST_RADIUS = 0.5
SENSOR_HEIGHT = 0.5
RAYS_PER_DIRECTION = 3
SENSOR_DEGREES = (70.0, 65.0, 75.0)
SENSOR_RISE = (0.0, 5.0, 10.0)
N_RAYS = len(SENSOR_DEGREES) * (2 * RAYS_PER_DIRECTION + 1)  # 21
OBS_SIZE = N_RAYS * RAY_VALUES + 1 + 3  # 172


def _ray_angles() -> np.ndarray:
    """Offsets from the heading, left (+) to right (-), sensor after sensor."""
    out = []
    for deg in SENSOR_DEGREES:
        step = deg / RAYS_PER_DIRECTION
        out += [step * k for k in range(RAYS_PER_DIRECTION, -RAYS_PER_DIRECTION - 1, -1)]
    return np.radians(np.array(out))


RAY_ANGLES = _ray_angles()
# each ray's rise per metre of floor distance (its end is SENSOR_RISE above its start)
RAY_SLOPE = np.repeat(np.array(SENSOR_RISE) / RAY_LENGTH, 2 * RAYS_PER_DIRECTION + 1).astype(np.float32)
_READING = np.zeros((N_TAGS + 1, RAY_VALUES), dtype=np.float32)  # by tag index; N_TAGS = nothing hit
_READING[np.arange(N_TAGS), np.arange(N_TAGS)] = 1.0
_READING[N_TAGS, N_TAGS] = 1.0
# the objects a ray may hit, per arena: the switch, the stones, then the bricks
SWITCH_SLOT = 0
STONE_SLOTS = slice(1, 1 + N_STONES)
BRICK_SLOTS = slice(1 + N_STONES, 1 + N_STONES + N_BRICKS)
N_OBJECTS = 1 + N_STONES + N_BRICKS
ENGAGE_MARGIN = 2.5  # metres (beyond touching, plus one decision's travel) at which an arena goes to PyBullet
SETTLE_DECISIONS = 20  # an arena stays in PyBullet this long after the agent was last near a brick


_SLOPE = RAY_SLOPE[None, :, None]
# floor-standing objects (switch, stones): the distance at which a raised ray passes over each, per ray
with np.errstate(divide="ignore"):
    _FIXED_T_HIGH = np.where(
        _SLOPE[0] > 0,
        (np.array([SWITCH_HEIGHT] + [STONE_HEIGHT] * N_STONES, dtype=np.float32) + CAST_RADIUS - SENSOR_HEIGHT)
        / _SLOPE[0],
        np.inf,
    ).astype(np.float32)  # (R, 7)


def _cast(
    dx: np.ndarray,
    dy: np.ndarray,
    rel: np.ndarray,
    radius: np.ndarray,
    t_low: np.ndarray | None,
    t_high: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit along each ray among discs with a height band: (distance (m, R), object index (m, R)).

    rel (m, K, 2): disc centres relative to the sensor; radius (K,); a ray hits a disc where it is inside both the
    widened disc (plan) and the band [t_low, t_high] of distances where its height is within the disc's (None:
    from the start)."""
    vx, vy = rel[:, None, :, 0], rel[:, None, :, 1]  # (m, 1, K)
    b = vx * dx[:, :, None] + vy * dy[:, :, None]  # (m, R, K)
    disc = b * b - (vx * vx + vy * vy - (radius + CAST_RADIUS) ** 2)
    root = np.sqrt(np.maximum(disc, 0.0))
    t_hit = np.maximum(b - root, 0.0)
    if t_low is not None:
        t_hit = np.maximum(t_hit, t_low)
    ok = (disc >= 0) & (t_hit <= np.minimum(b + root, t_high))
    t_obj = np.where(ok, t_hit, np.float32(np.inf))
    k = t_obj.argmin(axis=2)
    return np.take_along_axis(t_obj, k[..., None], axis=2)[..., 0], k


# The interior walls as a ray of radius CAST_RADIUS sees them: each room line carries four walls, symmetric about 0,
# which the cast widens by its radius. Along a line (coordinate v) they cover |v| in WALL_SPANS; across it they are
# 1 + 2 x CAST_RADIUS thick.
_SLAB = 0.5 + CAST_RADIUS
_EPS = 1e-3
_NEAR_LO, _NEAR_HI = ROOM_LINE - CROSS_ARM - CAST_RADIUS, ROOM_LINE + CROSS_ARM + CAST_RADIUS  # the crosses' arms
_FAR_LO = HALF - SIDE_WALL - CAST_RADIUS  # the side walls, out to the outer wall
with np.errstate(divide="ignore"):
    _INNER_T_HIGH = np.where(
        RAY_SLOPE > 0, (INNER_WALL_HEIGHT + CAST_RADIUS - SENSOR_HEIGHT) / RAY_SLOPE, np.inf
    ).astype(np.float32)  # (R,) the distance at which each raised ray passes over an interior wall's top


def _cast_inner_walls(px: np.ndarray, py: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """(m, R) distance along each ray to the nearest interior wall it hits below the wall's top (inf: none).

    The same as casting against the 16 widened boxes (their rounded corners taken square), done per room line: where
    the ray enters the line's slab, it hits a wall if it enters within one, else where it reaches the next wall's end
    along the line, if that comes before it leaves the slab. px, py (m, 1), dx, dy (m, R)."""
    best = np.full(dx.shape, np.inf, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for u, du, v, dv in ((px, dx, py, dy), (py, dy, px, dx)):  # lines x = c, then lines y = c
            inv = 1.0 / np.where(np.abs(du) < 1e-9, np.float32(1e-9), du)
            for c in (-ROOM_LINE, ROOM_LINE):
                t0, t1 = (c - _SLAB - u) * inv, (c + _SLAB - u) * inv
                t_in, t_out = np.maximum(np.minimum(t0, t1), 0.0), np.maximum(t0, t1)
                # where along the line the ray enters its slab (a hair further on: a ray that leaves a wall it
                # touches, the agent's own, does not see it, as Unity's sphere casts ignore what they start in)
                w = v + (t_in + _EPS) * dv
                a = np.abs(w)
                in_wall = ((a >= _NEAR_LO) & (a <= _NEAR_HI)) | (a >= _FAR_LO)
                # in a gap: the next wall end in the ray's direction along the line
                up = dv > 0
                end = np.where(
                    a < _NEAR_LO,
                    np.where(up, _NEAR_LO, -_NEAR_LO),
                    np.where(w > 0, np.where(up, _FAR_LO, _NEAR_HI), np.where(up, -_NEAR_HI, -_FAR_LO)),
                )
                t_hit = np.where(in_wall, t_in, t_in + (end - w) / dv)
                ok = (t_in + _EPS < t_out) & (t_hit <= t_out) & (t_hit >= t_in) & (t_hit <= _INNER_T_HIGH)
                np.minimum(best, np.where(ok, t_hit, np.inf), out=best)
    return best


def push_out_of_walls(xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Discs (m, 2) of `radius` moved out of the interior walls they overlap: (new centres, unit push normals (m, 2),
    zero where none)."""
    normal = np.zeros_like(xy)
    # every interior wall lies on a room line: only discs that near one can touch a wall (most, most of the time, not)
    reach = 0.5 + radius
    rows = np.flatnonzero((np.abs(np.abs(xy) - ROOM_LINE) < reach).any(axis=1))
    if rows.size == 0:
        return xy, normal
    xy = xy.copy()
    xy[rows], normal[rows] = _push_out(xy[rows], radius)
    return xy, normal


def _push_out(xy: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    b = INNER_WALLS.astype(np.float64)
    q = np.stack([np.clip(xy[:, None, 0], b[:, 0], b[:, 1]), np.clip(xy[:, None, 1], b[:, 2], b[:, 3])], axis=-1)
    d = xy[:, None] - q  # (m, 16, 2) from the nearest point of each box
    dist = np.sqrt((d * d).sum(-1))
    hit = dist < radius
    if not hit.any():
        return xy, np.zeros_like(xy)
    # a centre inside a box (dist 0) leaves by the nearest face
    inside = dist < 1e-9
    if inside.any():
        faces = np.stack(
            [xy[:, None, 0] - b[:, 0], b[:, 1] - xy[:, None, 0], xy[:, None, 1] - b[:, 2], b[:, 3] - xy[:, None, 1]], -1
        )
        out_dirs = np.array([(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)])[faces.argmin(-1)]
        depth = faces.min(-1)
    else:
        out_dirs, depth = np.zeros_like(d), np.zeros_like(dist)
    n = np.where(inside[..., None], out_dirs, d / np.maximum(dist, 1e-9)[..., None])
    amount = np.where(hit, np.where(inside, depth + radius, radius - dist), 0.0)
    moved = xy + (amount[..., None] * n).sum(axis=1)
    normal = (np.where(hit[..., None], n, 0.0)).sum(axis=1)
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    return moved, np.where(norm > 0, normal / np.maximum(norm, 1e-9), 0.0)


class BrickWorld:
    """One PyBullet world for one arena at a time: floor, walls, the bricks and the agent as a box."""

    def __init__(self) -> None:
        import pybullet as pb

        self.pb = pb
        self.cid = cid = pb.connect(pb.DIRECT)
        pb.setGravity(0, 0, -9.81, physicsClientId=cid)
        pb.setTimeStep(DT, physicsClientId=cid)
        pb.setPhysicsEngineParameter(numSolverIterations=10, numSubSteps=BULLET_SUBSTEPS, physicsClientId=cid)
        pb.createMultiBody(0, pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=cid), physicsClientId=cid)
        for axis in (0, 1):
            half = [0.5, HALF + 1.0, WALL_HEIGHT / 2]
            if axis:
                half = [half[1], half[0], half[2]]
            wall = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=cid)
            for side in (-1.0, 1.0):
                pos = [0.0, 0.0, WALL_HEIGHT / 2]
                pos[axis] = side * (HALF + 0.5)
                pb.createMultiBody(0, wall, basePosition=pos, physicsClientId=cid)
        for x0, x1, y0, y1 in INNER_WALLS.tolist():
            half = [(x1 - x0) / 2, (y1 - y0) / 2, INNER_WALL_HEIGHT / 2]
            wall = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=cid)
            centre = [(x0 + x1) / 2, (y0 + y1) / 2, INNER_WALL_HEIGHT / 2]
            pb.createMultiBody(0, wall, basePosition=centre, physicsClientId=cid)
        box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[BRICK / 2] * 3, physicsClientId=cid)
        self.bricks = [
            pb.createMultiBody(BRICK_MASS, box, basePosition=[0, 0, -10.0 - 2 * k], physicsClientId=cid)
            for k in range(N_BRICKS)
        ]
        self.agent = pb.createMultiBody(AGENT_MASS, box, basePosition=[0, 0, -50.0], physicsClientId=cid)
        for body in self.bricks + [self.agent]:
            pb.changeDynamics(body, -1, lateralFriction=0.6, linearDamping=0.0, angularDamping=0.0, physicsClientId=cid)
        # Bricks at rest may sleep (PyBullet keeps every body awake by default): a resting pyramid of 14 bricks
        # then costs nothing, against 0.55 ms a physics step awake; the agent's touch wakes them
        for body in self.bricks:
            pb.changeDynamics(body, -1, activationState=pb.ACTIVATION_STATE_ENABLE_SLEEPING, physicsClientId=cid)

    def load(
        self,
        brick_pos: np.ndarray,
        brick_quat: np.ndarray,
        agent_pos: np.ndarray,
        agent_angle: float,
        agent_vel: np.ndarray,
        settled: bool = True,
    ) -> None:
        """Put an arena's bricks and agent in this world; bricks that were at rest start asleep (a reset body is
        awake, and Bullet would only let it sleep after two simulated seconds of stillness)."""
        pb, cid = self.pb, self.cid
        for k, body in enumerate(self.bricks):
            pb.resetBasePositionAndOrientation(body, brick_pos[k].tolist(), brick_quat[k].tolist(), physicsClientId=cid)
            pb.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=cid)
            state = pb.ACTIVATION_STATE_SLEEP if settled else pb.ACTIVATION_STATE_WAKE_UP
            pb.changeDynamics(body, -1, activationState=state, physicsClientId=cid)
        pb.resetBasePositionAndOrientation(
            self.agent, [agent_pos[0], agent_pos[1], 0.5], _yaw(agent_angle), physicsClientId=cid
        )
        pb.resetBaseVelocity(self.agent, [agent_vel[0], agent_vel[1], 0.0], [0, 0, 0], physicsClientId=cid)

    def step(self, xy: np.ndarray, angle: float, target_vel: np.ndarray) -> tuple[list, list, bool]:
        """One physics step of the agent at `xy` driven to `target_vel`: (its position, velocity, touched gold).

        The position comes from the arrays, so the switch and the stones (which only the arrays know) still
        push the agent out."""
        pb, cid, agent = self.pb, self.cid, self.agent
        pos, _ = pb.getBasePositionAndOrientation(agent, physicsClientId=cid)
        pos = (float(xy[0]), float(xy[1]), pos[2])
        vel, _ = pb.getBaseVelocity(agent, physicsClientId=cid)
        # the agent turns kinematically (transform.Rotate) and stays upright; its push is a velocity change,
        # applied as the force that makes it within this step, so contacts with bricks still resolve
        pb.resetBasePositionAndOrientation(agent, pos, _yaw(angle), physicsClientId=cid)
        pb.resetBaseVelocity(agent, vel, [0, 0, 0], physicsClientId=cid)  # a reset pose loses the velocity
        # (Bullet applies the force in each of the step's BULLET_SUBSTEPS parts)
        force = [AGENT_MASS * (target_vel[0] - vel[0]) / DT, AGENT_MASS * (target_vel[1] - vel[1]) / DT, 0.0]
        pb.applyExternalForce(agent, -1, force, pos, pb.WORLD_FRAME, physicsClientId=cid)
        pb.stepSimulation(physicsClientId=cid)
        touched = bool(pb.getContactPoints(agent, self.bricks[GOLD], physicsClientId=cid))
        pos, _ = pb.getBasePositionAndOrientation(agent, physicsClientId=cid)
        vel, _ = pb.getBaseVelocity(agent, physicsClientId=cid)
        return pos, vel, touched

    def bricks_state(self) -> tuple[np.ndarray, np.ndarray]:
        poses = [self.pb.getBasePositionAndOrientation(b, physicsClientId=self.cid) for b in self.bricks]
        return np.array([p for p, _ in poses]), np.array([q for _, q in poses])

    def bricks_resting(self, tol: float = 1e-3) -> bool:
        """Whether every brick has stopped (so the arena's bricks may start asleep when next loaded)."""
        for b in self.bricks:
            lin, ang = self.pb.getBaseVelocity(b, physicsClientId=self.cid)
            if max(map(abs, lin + ang)) > tol:
                return False
        return True

    def close(self) -> None:
        try:
            self.pb.disconnect(physicsClientId=self.cid)
        except Exception:  # noqa: BLE001 - already gone with the interpreter
            pass


def _yaw(angle: float) -> list:
    return [0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2)]


class PyramidsCore:
    """N Pyramids arenas stepped together. Positions are (x, y) in metres, arena centre 0; `angle` is the heading.

    `step` takes one action per arena and runs one decision (DECISION_PERIOD physics steps); a finished arena
    stays frozen until `reset(mask)` restarts it.
    """

    def __init__(self, n: int = 1, *, max_decisions: int = MAX_DECISIONS, seed: int | None = None):
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n, self.max_decisions = int(n), int(max_decisions)
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((n, 2))
        self.vel = np.zeros((n, 3))  # world frame; z is non-zero only while PyBullet moves the agent
        self.angle = np.zeros(n)
        self.switch = np.zeros((n, 2))
        self.switch_on = np.zeros(n, dtype=bool)
        self.pyramid_at = np.zeros((n, 2))
        self.stones = np.zeros((n, N_STONES, 2))
        self.built = np.zeros(n, dtype=bool)
        self.brick_pos = np.zeros((n, N_BRICKS, 3))
        self.brick_quat = np.zeros((n, N_BRICKS, 4))
        self.brick_quat[..., 3] = 1.0
        self.t = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)
        self.builds = np.zeros(n, dtype=np.int64)  # pyramids built this episode (the tests count them)
        self.engaged_until = np.zeros(n, dtype=np.int64)
        self.bricks_settled = np.ones(n, dtype=bool)  # the bricks were at rest when their world last let go
        self.worlds: dict[int, BrickWorld] = {}  # arena -> its PyBullet world while engaged
        self._free: list[BrickWorld] = []
        # the ray casts' objects: centre, radius, bottom, top, tag; absent objects sit far below the floor
        self.obj_xy = np.zeros((n, N_OBJECTS, 2), dtype=np.float32)
        self.obj_r = np.zeros((n, N_OBJECTS), dtype=np.float32)
        self.obj_z = np.zeros((n, N_OBJECTS, 2), dtype=np.float32)
        self.obj_tag = np.zeros((n, N_OBJECTS), dtype=np.int64)
        self.obj_r[:, SWITCH_SLOT], self.obj_z[:, SWITCH_SLOT] = SWITCH_RADIUS, (0.0, SWITCH_HEIGHT)
        self.obj_r[:, STONE_SLOTS], self.obj_z[:, STONE_SLOTS] = STONE_RADIUS, (0.0, STONE_HEIGHT)
        self.obj_tag[:, STONE_SLOTS] = STONE
        self.obj_r[:, BRICK_SLOTS] = BRICK / 2
        self.obj_tag[:, BRICK_SLOTS] = BLOCK
        self.obj_tag[:, 1 + N_STONES + GOLD] = GOAL
        self.reset()

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def close(self) -> None:
        for world in list(self.worlds.values()) + self._free:
            world.close()
        self.worlds, self._free = {}, []

    # -- episode control -------------------------------------------------------------------------------
    def reset(self, mask: np.ndarray | None = None) -> None:
        idx = np.arange(self.n) if mask is None else np.flatnonzero(mask)
        if idx.size == 0:
            return
        m = idx.size
        for i in idx:
            self._release(int(i))
        areas = np.argsort(self.rng.random((m, 9)), axis=1)  # a shuffle of the 9 areas per arena
        spots = AREA_CENTRES[areas] + self.rng.uniform(-SPAWN_RANGE, SPAWN_RANGE, size=(m, 9, 2))
        # what would stand in a wall is moved clear of it (the pyramid's bricks would start inside one)
        spots[:, 1] = push_out_of_walls(spots[:, 1], SWITCH_RADIUS)[0]
        spots[:, 2] = push_out_of_walls(spots[:, 2], PYRAMID_CLEARANCE)[0]
        spots[:, 3:] = push_out_of_walls(spots[:, 3:].reshape(-1, 2), STONE_RADIUS)[0].reshape(m, N_STONES, 2)
        self.pos[idx] = spots[:, 0]
        self.angle[idx] = self.rng.uniform(-np.pi, np.pi, size=m)
        self.vel[idx] = 0.0
        self.switch[idx] = spots[:, 1]
        self.pyramid_at[idx] = spots[:, 2]
        self.stones[idx] = spots[:, 3:]
        self.switch_on[idx] = False
        self.built[idx] = False
        self.builds[idx] = 0
        self.t[idx] = 0
        self.done[idx] = False
        self.engaged_until[idx] = 0
        self.obj_xy[idx, SWITCH_SLOT] = self.switch[idx]
        self.obj_tag[idx, SWITCH_SLOT] = SWITCH_OFF
        self.obj_xy[idx, STONE_SLOTS] = self.stones[idx]
        self.brick_pos[idx] = (0.0, 0.0, -100.0)
        self._sync_bricks(idx)

    def build_pyramid(self, i: int) -> None:
        """The switch's effect in arena i (`CreatePyramid`): the bricks stacked at the pyramid's place."""
        self.switch_on[i] = True
        self.obj_tag[i, SWITCH_SLOT] = SWITCH_ON
        self.built[i] = True
        self.builds[i] += 1
        self.brick_pos[i] = BRICK_LAYOUT + (*self.pyramid_at[i], 0.0)
        self.brick_quat[i] = (0.0, 0.0, 0.0, 1.0)
        self.bricks_settled[i] = True  # built stacked and still
        self._sync_bricks(np.array([i]))

    def _sync_bricks(self, idx: np.ndarray) -> None:
        self.obj_xy[idx, BRICK_SLOTS] = self.brick_pos[idx, :, :2]
        z = self.brick_pos[idx, :, 2]
        self.obj_z[idx, BRICK_SLOTS, 0] = z - BRICK / 2
        self.obj_z[idx, BRICK_SLOTS, 1] = z + BRICK / 2

    # -- PyBullet worlds ----------------------------------------------------------------------------------
    def _engage(self, i: int) -> BrickWorld:
        world = self.worlds.get(i)
        if world is None:
            world = self._free.pop() if self._free else BrickWorld()
            world.load(
                self.brick_pos[i],
                self.brick_quat[i],
                self.pos[i],
                self.angle[i],
                self.vel[i],
                settled=bool(self.bricks_settled[i]),
            )
            self.worlds[i] = world
        return world

    def _release(self, i: int, keep_bricks: bool = False) -> None:
        world = self.worlds.pop(i, None)
        if world is None:
            return
        if keep_bricks:
            self.brick_pos[i], self.brick_quat[i] = world.bricks_state()
            self.bricks_settled[i] = world.bricks_resting()
            self._sync_bricks(np.array([i]))
        self._free.append(world)

    def _near_bricks(self) -> np.ndarray:
        d = np.linalg.norm(self.brick_pos[:, :, :2] - self.pos[:, None], axis=-1).min(axis=1)
        speed = np.linalg.norm(self.vel[:, :2], axis=-1)
        reach = AGENT_RADIUS + BRICK + ENGAGE_MARGIN + speed * DT * DECISION_PERIOD
        return self.built & (d < reach)

    # -- dynamics ---------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decision for every arena. Returns (rewards (n,) float32, terminated (n,), truncated (n,))."""
        a = np.asarray(actions).reshape(-1)
        if a.shape != (self.n,):
            raise ValueError(f"actions must have shape ({self.n},), not {a.shape}")
        if not ((a >= 0) & (a < 5)).all():
            raise ValueError("actions are 0 (no-op), 1 (forward), 2 (backward), 3 (turn left) or 4 (turn right)")
        live = ~self.done
        near = self._near_bricks() & live
        self.engaged_until[near] = self.t[near] + SETTLE_DECISIONS
        engaged = [int(i) for i in np.flatnonzero(live & self.built & (self.engaged_until > self.t))]
        for i in list(self.worlds):
            if i not in engaged:
                self._release(i, keep_bricks=True)
        worlds = {i: self._engage(i) for i in engaged}
        fwd = np.where(a == 1, 1.0, np.where(a == 2, -1.0, 0.0))
        turn = np.where(a == 3, 1.0, np.where(a == 4, -1.0, 0.0))
        rewards = np.zeros(self.n, dtype=np.float32)
        touched = np.zeros(self.n, dtype=bool)
        for _ in range(DECISION_PERIOD):
            running = live & ~touched
            rewards[running] += STEP_PENALTY
            self.angle = np.where(
                running, (self.angle + turn * TURN_SPEED * DT + np.pi) % (2 * np.pi) - np.pi, self.angle
            )
            heading = np.stack([np.cos(self.angle), np.sin(self.angle)], axis=-1)
            v = self.vel[:, :2] + (PUSH * fwd)[:, None] * heading
            speed = np.linalg.norm(v, axis=-1, keepdims=True)
            v *= np.maximum(0.0, 1.0 - FRICTION_DV / np.maximum(speed, 1e-9)) * DRAG_KEEP
            start = self.pos.copy()
            free = running.copy()
            for i, world in worlds.items():
                if not running[i]:
                    continue
                free[i] = False
                p, vel, hit = world.step(self.pos[i], float(self.angle[i]), v[i])
                self.pos[i], self.vel[i] = p[:2], vel
                touched[i] |= hit
            self.vel[free, :2], self.vel[free, 2] = v[free], 0.0
            self.pos[free] += v[free] * DT
            self._collide(running, start)
        for i in engaged:  # the bricks' poses, for the rays
            self.brick_pos[i], self.brick_quat[i] = worlds[i].bricks_state()
        if engaged:
            self._sync_bricks(np.array(engaged))
        rewards[touched] = GOAL_REWARD  # SetReward(2f): replaces the decision's accumulated penalty
        self.t[live] += 1
        terminated = touched
        truncated = live & ~terminated & (self.t >= self.max_decisions)
        self.done |= terminated | truncated
        for d in np.flatnonzero(self.done):
            self._release(int(d))
        return rewards, terminated, truncated

    def _collide(self, running: np.ndarray, start: np.ndarray) -> None:
        """Walls, stones and the switch against the agent disc; a touch of the switch while off builds the pyramid."""
        lim = HALF - AGENT_RADIUS
        out = np.abs(self.pos) > lim
        self.pos = np.clip(self.pos, -lim, lim)
        self.vel[:, :2][out] = 0.0
        pos, normal = push_out_of_walls(self.pos, AGENT_RADIUS)  # the interior walls stop the motion into them
        self.pos = np.where(running[:, None], pos, self.pos)
        into = np.minimum((self.vel[:, :2] * normal).sum(-1), 0.0) * running
        self.vel[:, :2] -= into[:, None] * normal
        centres = np.concatenate([self.switch[:, None], self.stones], axis=1)  # (n, 7, 2)
        radius = np.array([SWITCH_RADIUS] + [STONE_RADIUS] * N_STONES) + AGENT_RADIUS
        d = self.pos[:, None] - centres
        dist = np.sqrt((d * d).sum(-1))
        hit = (dist < radius) & running[:, None]
        # the switch is pressed by a touch anywhere along the step's path (a fast agent could pass its edge)
        seg = self.pos - start
        w = self.switch - start
        s = np.clip((w * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0.0, 1.0)
        closest = np.linalg.norm(start + s[:, None] * seg - self.switch, axis=-1)
        pressed = running & ~self.switch_on & (closest <= radius[0] + 1e-6)
        if hit.any():
            n = d / np.maximum(dist, 1e-9)[..., None]
            push = np.where(hit, radius - dist, 0.0)[..., None] * n
            self.pos += push.sum(axis=1)
            normal_v = (self.vel[:, None, :2] * n).sum(-1)
            self.vel[:, :2] -= (np.where(hit & (normal_v < 0), normal_v, 0.0)[..., None] * n).sum(axis=1)
        for i in np.flatnonzero(pressed):
            self.build_pyramid(int(i))

    # -- observations -------------------------------------------------------------------------------------
    def rays(self) -> np.ndarray:
        """(n, 21, 8) float32 ray readings, sensors in order 70, 65, 75 degrees, rays left to right."""
        theta = (self.angle[:, None] + RAY_ANGLES).astype(np.float32)  # (n, R)
        dx, dy = np.cos(theta), np.sin(theta)
        p = self.pos.astype(np.float32)
        px, py = p[:, 0:1], p[:, 1:2]
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = (np.copysign(np.float32(HALF), dx) - px) / dx
            ty = (np.copysign(np.float32(HALF), dy) - py) / dy
        t_wall = np.minimum(tx, ty)
        # a raised ray passes over a wall whose top (plus the cast's radius) is below it there
        wall_seen = SENSOR_HEIGHT + RAY_SLOPE * t_wall <= WALL_HEIGHT + CAST_RADIUS
        t_wall = np.minimum(np.where(wall_seen, t_wall, np.inf), _cast_inner_walls(px, py, dx, dy))
        # the switch and the stones stand on the floor: only their tops limit a raised ray, the same for all arenas
        t_near, obj_tag = _cast(
            dx,
            dy,
            self.obj_xy[:, : BRICK_SLOTS.start] - p[:, None],
            self.obj_r[0, : BRICK_SLOTS.start],
            None,
            _FIXED_T_HIGH,
        )
        obj_tag = self.obj_tag[np.arange(self.n)[:, None], obj_tag]
        # bricks only where a pyramid stands within reach of the rays (most arenas have none most of the time)
        d = np.abs(self.brick_pos[:, :, :2] - self.pos[:, None]).max(axis=-1).min(axis=1)
        near = np.flatnonzero(self.built & (d < RAY_LENGTH + BRICK + CAST_RADIUS))
        if near.size:
            z = self.obj_z[near, BRICK_SLOTS] - SENSOR_HEIGHT  # heights relative to the sensor
            low = z[:, None, :, 0] - CAST_RADIUS
            high = z[:, None, :, 1] + CAST_RADIUS
            with np.errstate(divide="ignore", invalid="ignore"):
                t_low = np.where(_SLOPE > 0, low / _SLOPE, np.where(low <= 0, -np.inf, np.inf))
                t_high = np.where(_SLOPE > 0, high / _SLOPE, np.where(high >= 0, np.inf, -np.inf))
            t_b, k_b = _cast(
                dx[near],
                dy[near],
                self.obj_xy[near, BRICK_SLOTS] - p[near, None],
                self.obj_r[0, BRICK_SLOTS],
                t_low,
                t_high,
            )
            closer = t_b < t_near[near]
            t_near[near] = np.where(closer, t_b, t_near[near])
            obj_tag[near] = np.where(closer, self.obj_tag[near[:, None], BRICK_SLOTS.start + k_b], obj_tag[near])
        use_obj = t_near < t_wall
        t = np.where(use_obj, t_near, t_wall)
        tag = np.where(use_obj, obj_tag, WALL)
        hit = t <= RAY_LENGTH
        out = _READING[np.where(hit, tag, N_TAGS)]
        out[..., N_TAGS + 1] = np.where(hit, t / RAY_LENGTH, 1.0)
        return out

    def observe(self) -> np.ndarray:
        """(n, 172) float32: the rays, the switch state, the agent's velocity in its own frame (right, up, forward)."""
        out = np.empty((self.n, OBS_SIZE), dtype=np.float32)
        out[:, : N_RAYS * RAY_VALUES] = self.rays().reshape(self.n, -1)
        out[:, -4] = self.switch_on
        c, s = np.cos(self.angle), np.sin(self.angle)
        vx, vy = self.vel[:, 0], self.vel[:, 1]
        out[:, -3] = vx * s - vy * c  # right = (sin, -cos)
        out[:, -2] = self.vel[:, 2]
        out[:, -1] = vx * c + vy * s
        return out


# -- drawing -------------------------------------------------------------------------------------------------


def frame(core: PyramidsCore, i: int = 0, scale: int = 5) -> np.ndarray:
    """Top-down RGB picture (H, W, 3) uint8 of arena i: floor, walls, stones, switch, bricks (higher ones lighter),
    agent."""
    gx, gy = pixel_grid(2 * HALF + 2, 2 * HALF + 2, scale)
    img = np.empty(gx.shape + (3,), dtype=np.uint8)
    img[:] = (70, 70, 80)
    img[(np.abs(gx) <= HALF) & (np.abs(gy) <= HALF)] = (200, 190, 160)
    for x0, x1, y0, y1 in INNER_WALLS:
        img[(gx >= x0) & (gx <= x1) & (gy >= y0) & (gy <= y1)] = (70, 70, 80)
    for x, y in core.stones[i]:
        draw_disc(img, gx, gy, x, y, STONE_RADIUS, (120, 120, 120))
    sx, sy = core.switch[i]
    draw_disc(img, gx, gy, sx, sy, SWITCH_RADIUS, (60, 200, 60) if core.switch_on[i] else (200, 50, 50))
    if core.built[i]:
        for k in np.argsort(core.brick_pos[i, :, 2]):  # lower bricks first, so the top of a stack shows
            x, y, z = core.brick_pos[i, k]
            shade = int(min(60, 20 * z))
            color = (240, 200, 30) if k == GOLD else (150 + shade, 80 + shade, 40 + shade)
            draw_disc(img, gx, gy, x, y, BRICK / 2, color)
    ax, ay = core.pos[i]
    draw_disc(img, gx, gy, ax, ay, AGENT_RADIUS * 1.4, (40, 90, 220))
    draw_disc(
        img, gx, gy, ax + 0.8 * math.cos(core.angle[i]), ay + 0.8 * math.sin(core.angle[i]), 0.35, (250, 250, 250)
    )
    return img


# -- Gymnasium ------------------------------------------------------------------------------------------------


class PyramidsEnv(ArenaEnv):
    """One Pyramids arena as a Gymnasium env: observation (172,) float32, Discrete(5); one step = one decision."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / (DT * DECISION_PERIOD)))}

    def __init__(self, max_decisions: int = MAX_DECISIONS, render_mode: str | None = None):
        super().__init__(PyramidsCore(1, max_decisions=int(max_decisions)), render_mode)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Discrete(5)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return *self._step_core(np.array([int(action)])), {"switch_on": bool(self.core.switch_on[0])}

    def render(self) -> np.ndarray | None:
        return frame(self.core, 0) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self.core.close()


def make(kwargs: dict, render_mode: str | None = None, training: bool = False) -> PyramidsEnv:
    """Registry builder (env kwargs: max_decisions)."""
    return PyramidsEnv(render_mode=render_mode, **kwargs)
