"""SoccerTwos (Unit 7): a 2 vs 2 soccer game in the shape of ML-Agents' SoccerTwos, written over numpy arrays.

Unity's SoccerTwos cannot run here (Unity binaries, ML-Agents pinned to Python 3.10), so this is our own game,
faithful to what the course describes:

- Field: a rectangle with walls and cut (45 degree) corners, a goal in the middle of each end. Blue defends the goal
  at x < 0 and attacks towards +x; purple the opposite. Agents are discs, the ball a smaller disc. Agents push and
  kick the ball, bump into each other, and slide along the walls; the ball bounces off walls and agents and slows by
  friction. The corners are cut because in a right-angled corner the ball is a trap: an agent is wider than the
  ball, so every touch of a ball lying in the corner pushes it further in, and matches ended as draws with the ball
  pinned there (76 of 79 draws of a trained team against the scripted one). A cut corner deflects a pushed ball
  along the wall, towards the goal line or back into play.
- Actions: three discrete branches, as ML-Agents' SoccerTwos (`MultiDiscrete([3, 3, 3])`):
  [0] none / forward / backward, [1] none / strafe right / strafe left, [2] none / rotate left / rotate right.
  Moving forward into the ball kicks it (ML-Agents kicks only while the forward action is held).
- Observations (336 float32 values, ML-Agents' layout): two ray sensors, each stacked over 3 frames:
  11 rays forward spread over 120 degrees (3 x 11 x 8 = 264 values) then 3 rays backward spread over 90
  degrees (3 x 3 x 8 = 72 values). Frames run oldest first; at reset the older frames are zeros, as ML-Agents'
  stacking sensor starts. Rays within a frame are ordered as ML-Agents orders them: the centre ray first, then
  alternately right and left, widening (forward: 0, -12, +12, -24, +24, ... -60, +60 degrees; backward: 180,
  135, 225). Each ray gives 8 values, as ML-Agents' RayPerceptionSensor writes them: a one-hot of the first thing
  it hit among 6 kinds (ball, own goal, opposing goal, wall, teammate, opponent), a "hit nothing" flag (1 when
  the ray reached its full length without a hit), and the hit distance as a fraction of the ray length (1 when
  nothing was hit). Kinds are relative to the observer's team (own/opposing goal, teammate/opponent) rather
  than Unity's blue/purple tags, so one policy plays either side unchanged. Like ML-Agents' sphere casts, rays
  have a width: discs are seen `CAST_RADIUS` wider than they are.
- Rewards (ML-Agents' SoccerEnvController): when a team scores it gets 1 - t / max_steps (the accumulated time
  penalty), the team conceding gets -1; every agent of a team receives its team's reward. An episode
  terminates on a goal and is truncated at `max_steps` decisions (no reward).

This module is the game itself: geometry, dynamics, rewards and ray observations over arrays of N matches. Drawing
a frame is render.py, the fixed teams and matches between teams are teams.py, the PettingZoo and Gymnasium faces
of one match are pettingzoo.py and team_env.py (the package's __init__ lists them).
"""

from __future__ import annotations

import math

import numpy as np

# Geometry (metres) and dynamics; a decision lasts DT seconds and is simulated in SUBSTEPS physics steps.
FIELD_LENGTH = 16.0
FIELD_WIDTH = 10.0
GOAL_HALF_WIDTH = 1.5
GOAL_DEPTH = 1.0  # drawn only; a goal counts when the ball's centre crosses the goal line
CORNER_CUT = 2.0  # each corner is cut by a 45 degree wall meeting both walls this far from the corner
# the cut walls lie on |x| + |y| = FIELD_LENGTH / 2 + FIELD_WIDTH / 2 - CORNER_CUT
_CUT_SUM = FIELD_LENGTH / 2 + FIELD_WIDTH / 2 - CORNER_CUT
_SQRT2 = math.sqrt(2.0)
AGENT_RADIUS = 0.5
BALL_RADIUS = 0.35
CAST_RADIUS = 0.5  # ML-Agents' SoccerTwos ray sensors are sphere casts of radius 0.5
RAY_LENGTH = 20.0
DT = 0.1
SUBSTEPS = 2
FORWARD_SPEED = 3.0
LATERAL_SPEED = 2.0
TURN_SPEED = math.radians(180.0)  # per second
AGENT_RESPONSE = 0.5  # share of the gap to the commanded velocity closed each substep
KICK_SPEED = 5.0  # ball speed added along the contact normal by an agent moving forward into it
BUMP_SPEED = 0.3  # a touch without the forward action only nudges the ball
BALL_RESTITUTION = 0.8
BALL_FRICTION = 0.985  # velocity kept per substep
BALL_MAX_SPEED = 10.0
MAX_STEPS = 500

N_AGENTS = 4  # blue_0, blue_1, purple_0, purple_1
TEAM = np.array([0, 0, 1, 1])
AGENT_IDS = ("blue_0", "blue_1", "purple_0", "purple_1")
N_KINDS = 6  # ball, own goal, opposing goal, wall, teammate, opponent
BALL, OWN_GOAL, OPP_GOAL, WALL, TEAMMATE, OPPONENT = range(N_KINDS)
RAY_VALUES = N_KINDS + 2
N_STACK = 3
N_FORWARD, N_BACKWARD = 11, 3
N_RAYS = N_FORWARD + N_BACKWARD
OBS_SIZE = N_STACK * N_RAYS * RAY_VALUES  # 336


def _ml_agents_ray_angles(n_per_side: int, max_degrees: float) -> list[float]:
    """ML-Agents' RayPerceptionSensor order: centre, then right/left pairs widening to +-max_degrees."""
    out = [0.0]
    for i in range(1, n_per_side + 1):
        a = max_degrees * i / n_per_side
        out += [-a, a]
    return out


RAY_ANGLES = np.radians(np.array(_ml_agents_ray_angles(5, 60.0) + [180 + a for a in _ml_agents_ray_angles(1, 45.0)]))
SIGN = np.array([0.0, 1.0, -1.0])  # action value -> direction along its branch
# Observer i sees disc j (0-3 agents, 4 ball) as this kind.
_DISC_KIND = np.array(
    [[BALL if j == 4 else (TEAMMATE if TEAM[i] == TEAM[j] else OPPONENT) for j in range(5)] for i in range(N_AGENTS)]
)
_SELF = np.eye(N_AGENTS, 5, dtype=bool)
_RADII2 = ((np.array([AGENT_RADIUS] * N_AGENTS + [BALL_RADIUS]) + CAST_RADIUS) ** 2).astype(np.float32)[:, None]
_STATE = ("pos", "vel", "angle", "ball", "ball_vel", "t", "obs")
_FWD = N_FORWARD * RAY_VALUES  # 88 values per forward frame
_BACK = N_BACKWARD * RAY_VALUES  # 24 per backward frame
_F0 = N_STACK * _FWD  # 264: where the backward sensor starts
# ray readings by kind index (6 = nothing hit): the one-hot and the "hit nothing" flag; distance goes in slot 7
_READING = np.zeros((N_KINDS + 1, RAY_VALUES), dtype=np.float32)
_READING[np.arange(N_KINDS), np.arange(N_KINDS)] = 1.0
_READING[N_KINDS, N_KINDS] = 1.0
_PAIRS = [(i, j) for i in range(N_AGENTS) for j in range(i + 1, N_AGENTS)]


def _cut_penetration(p: np.ndarray, radius: float) -> np.ndarray:
    """How far discs of `radius` centred at p (..., 2) reach past the cut corner wall of their quadrant."""
    return (np.abs(p[..., 0]) + np.abs(p[..., 1]) - _CUT_SUM) / _SQRT2 + radius


def _push_off_cut(p: np.ndarray, v: np.ndarray, pen: np.ndarray, hit: np.ndarray, restitution: float) -> None:
    """Move the discs in `hit` back inside along the cut wall's normal and bounce their outward velocity (in place)."""
    n = np.where(p[hit] >= 0, 1.0, -1.0) / _SQRT2  # outward normal of the quadrant's cut wall
    p[hit] -= pen[hit][:, None] * n
    out = (v[hit] * n).sum(-1)
    v[hit] -= ((1.0 + restitution) * np.maximum(out, 0.0))[:, None] * n


class SoccerCore:
    """N SoccerTwos matches stepped together as arrays. Agent order per match: blue_0, blue_1, purple_0, purple_1.

    Positions are (x, y) in metres with the field centre at 0; `angle` is each agent's heading in radians
    (0 faces +x, blue's attacking direction). `step` leaves finished matches finished until `reset(mask)`.
    """

    def __init__(self, n: int = 1, *, max_steps: int = MAX_STEPS, seed: int | None = None):
        if n < 1:
            raise ValueError("n must be at least 1")
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.n, self.max_steps = int(n), int(max_steps)
        self.rng = np.random.default_rng(seed)
        self.pos = np.zeros((n, N_AGENTS, 2))
        self.vel = np.zeros((n, N_AGENTS, 2))
        self.angle = np.zeros((n, N_AGENTS))
        self.ball = np.zeros((n, 2))
        self.ball_vel = np.zeros((n, 2))
        self.t = np.zeros(n, dtype=np.int64)
        # the stacked observation itself, shifted one frame per step (cheaper than re-assembling it)
        self.obs = np.zeros((n, N_AGENTS, OBS_SIZE), dtype=np.float32)
        self.last_kick = np.zeros((n, N_AGENTS), dtype=bool)
        self.done = np.zeros(n, dtype=bool)
        self.touched = np.zeros((n, N_AGENTS), dtype=bool)  # who touched the ball in the last step
        self.reset()

    # -- episode control -------------------------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Kick-off for the matches in `mask` (all when None): teams in their halves, ball near the centre."""
        idx = np.arange(self.n) if mask is None else np.flatnonzero(mask)
        m = idx.size
        if m == 0:
            return
        rng = self.rng
        # Mirror-symmetric kick-off (as ML-Agents: start spots with random jitter, heading towards the other half).
        base = np.array([[-FIELD_LENGTH / 4, FIELD_WIDTH / 5], [-FIELD_LENGTH / 4, -FIELD_WIDTH / 5]])
        jitter = rng.uniform(-1.0, 1.0, size=(m, N_AGENTS, 2)) * np.array([1.5, 1.0])
        pos = np.concatenate([base[None].repeat(m, 0), -base[None].repeat(m, 0)], axis=1) + jitter
        self.pos[idx] = pos
        self.vel[idx] = 0.0
        heading = np.array([0.0, 0.0, np.pi, np.pi])
        self.angle[idx] = heading + rng.uniform(-np.pi / 9, np.pi / 9, size=(m, N_AGENTS))
        self.ball[idx] = rng.uniform(-1.0, 1.0, size=(m, 2)) * np.array([1.0, 2.0])
        self.ball_vel[idx] = 0.0
        self.t[idx] = 0
        self.obs[idx] = 0.0
        self.last_kick[idx] = False
        self.done[idx] = False
        self._put_newest(self._rays(idx), idx)

    # -- dynamics ---------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every match one decision with `actions` (n, 4, 3) ints.

        Returns (rewards (n, 4) float32, terminated (n,), truncated (n,), scorer (n,) int: 0 blue, 1 purple,
        -1 none). A finished match stays frozen (no reward, no second goal) until `reset` restarts it.
        """
        a = np.asarray(actions)
        if a.shape != (self.n, N_AGENTS, 3):
            raise ValueError(f"actions must have shape {(self.n, N_AGENTS, 3)}, not {a.shape}")
        if not ((a >= 0) & (a < 3)).all():
            raise ValueError("every action branch takes 0, 1 or 2")
        frozen = np.flatnonzero(self.done)
        if frozen.size:
            saved = [(name, getattr(self, name)[frozen].copy()) for name in _STATE]
        fwd, lat, rot = SIGN[a[..., 0]], SIGN[a[..., 1]], SIGN[a[..., 2]]
        kicking = a[..., 0] == 1
        self.last_kick = kicking
        self.touched[:] = False
        scorer = np.full(self.n, -1, dtype=np.int64)
        h = DT / SUBSTEPS
        for _ in range(SUBSTEPS):
            self.angle = (self.angle + rot * TURN_SPEED * h + np.pi) % (2 * np.pi) - np.pi
            c, s = np.cos(self.angle), np.sin(self.angle)
            # forward = (c, s); right = (s, -c)
            target = np.stack(
                [fwd * FORWARD_SPEED * c + lat * LATERAL_SPEED * s, fwd * FORWARD_SPEED * s - lat * LATERAL_SPEED * c],
                axis=-1,
            )
            self.vel += (target - self.vel) * AGENT_RESPONSE
            self.pos += self.vel * h
            self._agent_collisions()
            self._agent_walls()
            self._ball_contacts(kicking, np.stack([c, s], axis=-1))
            self.ball_vel *= BALL_FRICTION
            speed = np.linalg.norm(self.ball_vel, axis=-1, keepdims=True)
            self.ball_vel *= np.minimum(1.0, BALL_MAX_SPEED / np.maximum(speed, 1e-9))
            self.ball += self.ball_vel * h
            goal = self._ball_walls()
            first = (goal >= 0) & (scorer < 0)
            scorer[first] = goal[first]
            # a scored match keeps its ball behind the line for the rest of this decision
            self.ball_vel[scorer >= 0] = 0.0
        self.t += 1
        terminated = scorer >= 0
        truncated = ~terminated & (self.t >= self.max_steps)
        rewards = np.zeros((self.n, N_AGENTS), dtype=np.float32)
        if terminated.any():
            k = np.flatnonzero(terminated)
            win = 1.0 - self.t[k] / self.max_steps  # ML-Agents: 1 - accumulated time penalty
            scored_team = TEAM[None, :] == scorer[k, None]
            rewards[k] = np.where(scored_team, win[:, None], -1.0)
        o = self.obs
        o[..., : _F0 - _FWD] = o[..., _FWD:_F0]
        o[..., _F0 : OBS_SIZE - _BACK] = o[..., _F0 + _BACK :]
        self._put_newest(self._rays())
        if frozen.size:
            for name, value in saved:
                getattr(self, name)[frozen] = value
            rewards[frozen] = 0.0
            terminated[frozen] = truncated[frozen] = False
            scorer[frozen] = -1
        self.done |= terminated | truncated
        return rewards, terminated, truncated, scorer

    def _agent_collisions(self) -> None:
        for i, j in _PAIRS:
            d = self.pos[:, j] - self.pos[:, i]
            dist = np.sqrt((d * d).sum(-1))
            hit = dist < 2 * AGENT_RADIUS
            if not hit.any():
                continue
            n = d / np.maximum(dist, 1e-9)[:, None]
            n[dist < 1e-9] = (1.0, 0.0)
            overlap = np.where(hit, 2 * AGENT_RADIUS - dist, 0.0)[:, None]
            self.pos[:, i] -= 0.5 * overlap * n
            self.pos[:, j] += 0.5 * overlap * n
            # equal masses: exchange the approaching part of the normal velocities
            closing = ((self.vel[:, i] - self.vel[:, j]) * n).sum(-1)
            impulse = np.where(hit & (closing > 0), closing, 0.0)[:, None] * n
            self.vel[:, i] -= impulse
            self.vel[:, j] += impulse

    def _agent_walls(self) -> None:
        lim = np.array([FIELD_LENGTH / 2 - AGENT_RADIUS, FIELD_WIDTH / 2 - AGENT_RADIUS])
        out = np.abs(self.pos) > lim
        self.pos = np.clip(self.pos, -lim, lim)
        self.vel[out] *= -0.3
        pen = _cut_penetration(self.pos, AGENT_RADIUS)
        hit = pen > 0
        if hit.any():
            _push_off_cut(self.pos, self.vel, pen, hit, 0.3)

    def _ball_contacts(self, kicking: np.ndarray, facing: np.ndarray) -> None:
        for i in range(N_AGENTS):
            d = self.ball - self.pos[:, i]
            dist = np.sqrt((d * d).sum(-1))
            hit = dist < AGENT_RADIUS + BALL_RADIUS
            if not hit.any():
                continue
            n = d / np.maximum(dist, 1e-9)[:, None]
            n[dist < 1e-9] = facing[dist < 1e-9, i]
            k = np.flatnonzero(hit)
            self.touched[k, i] = True
            self.ball[k] = self.pos[k, i] + n[k] * (AGENT_RADIUS + BALL_RADIUS)
            agent_n = (self.vel[k, i] * n[k]).sum(-1)
            ball_n = (self.ball_vel[k] * n[k]).sum(-1)
            # a kick happens only from the front half of the agent, as a foot would
            front = (facing[k, i] * n[k]).sum(-1) > 0.0
            push = np.where(kicking[k, i] & front, KICK_SPEED, BUMP_SPEED)
            wanted = np.maximum(agent_n, 0.0) + push
            gain = np.maximum(wanted - ball_n, 0.0)
            self.ball_vel[k] += gain[:, None] * n[k]

    def _ball_walls(self) -> np.ndarray:
        """Bounce the ball off walls; return the team that scored per match (-1: none)."""
        half_l, half_w = FIELD_LENGTH / 2, FIELD_WIDTH / 2
        x, y = self.ball[:, 0], self.ball[:, 1]
        in_mouth = np.abs(y) < GOAL_HALF_WIDTH
        goal = np.full(self.n, -1, dtype=np.int64)
        goal[in_mouth & (x > half_l)] = 0  # blue scores in purple's goal at +x
        goal[in_mouth & (x < -half_l)] = 1
        # side walls
        lim_y = half_w - BALL_RADIUS
        hit = np.abs(y) > lim_y
        if hit.any():
            self.ball[hit, 1] = np.clip(y[hit], -lim_y, lim_y)
            self.ball_vel[hit, 1] *= -BALL_RESTITUTION
        # end walls, except where the goal mouth opens
        lim_x = half_l - BALL_RADIUS
        hit = (np.abs(x) > lim_x) & ~in_mouth
        if hit.any():
            self.ball[hit, 0] = np.clip(x[hit], -lim_x, lim_x)
            self.ball_vel[hit, 0] *= -BALL_RESTITUTION
        # a ball inside the goal cannot leave it sideways (the goal's side nets)
        deep = (np.abs(x) > half_l) & ~in_mouth
        if deep.any():
            self.ball[deep, 1] = np.clip(y[deep], -GOAL_HALF_WIDTH, GOAL_HALF_WIDTH)
        # the cut corners (after the walls: moving in along the diagonal keeps the ball off both walls)
        pen = _cut_penetration(self.ball[:, None], BALL_RADIUS)[:, 0]
        hit = pen > 0
        if hit.any():
            _push_off_cut(self.ball[:, None], self.ball_vel[:, None], pen[:, None], hit[:, None], BALL_RESTITUTION)
        return goal

    # -- observations -------------------------------------------------------------------------------------
    def _rays(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The current frame of ray readings, (m, 4, 14, 8) float32."""
        pos = self.pos if idx is None else self.pos[idx]
        angle = self.angle if idx is None else self.angle[idx]
        ball = self.ball if idx is None else self.ball[idx]
        # float32 throughout: readings are float32 anyway, and it halves the memory traffic
        theta = (angle[:, :, None] + RAY_ANGLES).astype(np.float32)  # (m, 4, R)
        dx, dy = np.cos(theta), np.sin(theta)
        p32 = pos.astype(np.float32)
        px, py = p32[..., 0:1], p32[..., 1:2]  # (m, 4, 1)
        # walls and goal lines: the field is convex and agents are inside it, so the exit point is the hit
        half_l, half_w = FIELD_LENGTH / 2, FIELD_WIDTH / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = (np.copysign(np.float32(half_l), dx) - px) / dx  # dx = 0 gives inf: never reaches an end
            ty = (np.copysign(np.float32(half_w), dy) - py) / dy
        # the four cut corners: a convex field, so the exit is the nearest wall line the ray moves towards
        t_cut = np.full_like(tx, np.inf)
        for sx in (1.0, -1.0):
            for sy in (1.0, -1.0):
                towards = sx * dx + sy * dy
                with np.errstate(divide="ignore", invalid="ignore"):
                    t = np.maximum(np.float32(_CUT_SUM) - sx * px - sy * py, 0.0) / towards
                t_cut = np.where(towards > 0, np.minimum(t_cut, t), t_cut)
        end_wall = tx < np.minimum(ty, t_cut)
        t_wall = np.minimum(np.minimum(tx, ty), t_cut)
        y_at_end = py + tx * dy
        into_goal = end_wall & (np.abs(y_at_end) < GOAL_HALF_WIDTH)
        # +x is the goal blue attacks; for purple observers it is their own goal
        attacks_plus = (TEAM == 0)[None, :, None]
        goal_kind = np.where((dx > 0) == attacks_plus, OPP_GOAL, OWN_GOAL)
        wall_kind = np.where(into_goal, goal_kind, WALL)
        # discs (agents and ball), widened by the cast radius; an observer never sees itself (c = inf)
        centres = np.concatenate([pos, ball[:, None, :]], axis=1).astype(np.float32)  # (m, 5, 2)
        vx = (centres[:, None, :, 0] - p32[:, :, None, 0])[..., None]  # (m, 4 observers, 5 discs, 1)
        vy = (centres[:, None, :, 1] - p32[:, :, None, 1])[..., None]
        c = vx * vx + vy * vy - _RADII2
        c[:, _SELF] = np.inf
        b = vx * dx[:, :, None, :] + vy * dy[:, :, None, :]  # (m, 4, 5, R)
        disc = b * b - c
        t_disc = b - np.sqrt(np.maximum(disc, 0.0))
        t_disc[(disc < 0) | (b <= 0)] = np.inf
        inside = c < 0  # already touching: distance 0
        if inside.any():
            t_disc = np.where(inside, np.float32(0.0), t_disc)
        nearest = t_disc.argmin(axis=2)  # (m, 4, R)
        t_near = np.take_along_axis(t_disc, nearest[:, :, None, :], axis=2)[:, :, 0]
        disc_kind = _DISC_KIND[np.arange(N_AGENTS)[None, :, None], nearest]
        use_disc = t_near < t_wall
        t_hit = np.where(use_disc, t_near, t_wall)
        kind = np.where(use_disc, disc_kind, wall_kind)
        hit = t_hit <= RAY_LENGTH
        out = _READING[np.where(hit, kind, N_KINDS)]
        out[..., N_KINDS + 1] = np.where(hit, t_hit / RAY_LENGTH, 1.0)
        return out

    def _put_newest(self, rays: np.ndarray, idx: np.ndarray | None = None) -> None:
        m = rays.shape[0]
        fwd = rays[:, :, :N_FORWARD].reshape(m, N_AGENTS, _FWD)
        back = rays[:, :, N_FORWARD:].reshape(m, N_AGENTS, _BACK)
        if idx is None:
            self.obs[..., _F0 - _FWD : _F0] = fwd
            self.obs[..., OBS_SIZE - _BACK :] = back
        else:
            self.obs[idx, :, _F0 - _FWD : _F0] = fwd
            self.obs[idx, :, OBS_SIZE - _BACK :] = back

    def observe(self) -> np.ndarray:
        """(n, 4, 336) float32: forward sensor (3 frames x 11 rays x 8) then backward (3 x 3 x 8)."""
        return self.obs.copy()
