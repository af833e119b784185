"""Huggy (Bonus Unit 1): a four-legged dog that runs to a stick, on PyBullet.

The course's Huggy is a Unity build (a binary zip) based on Unity's "Puppo the Corgi"; its source is not public, so
this re-creates what the course text says (`units/en/unitbonus1/how-huggy-works.mdx`): joint motors drive the legs
(continuous actions), the dog senses where the stick is and how its body and legs are, a reward of four terms, and a
stick that respawns somewhere else once reached while the episode goes on. What the text leaves open is chosen here
(UNVERIFIED against the Unity build, which is not readable):

- Body: built from PyBullet primitives in DIRECT mode (no window): a box trunk (0.6 x 0.24 x 0.16 m, 6 kg) with a
  box head fixed on its front, and four legs of two capsules each (upper and lower leg, 0.16 m, 0.5 kg each), joined
  to the trunk at the hip and to each other at the knee by revolute joints about the body's sideways axis: 8 joints,
  hips limited to +-60 degrees, knees to [-120, +10] degrees. No model shipped with pybullet_data is used (laikago,
  a1, minitaur have 12 joints with mesh collisions, several times slower to step).
- Physics: 1/40 s steps, `PHYSICS_STEPS` = 2 per decision, so a decision every 0.05 s (20 Hz), 20 solver iterations
  (PyBullet's default 50 doubles the cost). Ground friction 1, with Bullet's pyramid approximation of the friction
  cone (`enableConeFriction=0`; Unity's PhysX approximates it too, by default with friction patches): a physics
  step costs a fifth less than with the exact cone (54 against 67 us, random actions on this machine).
- Actions: Box([-1, 1], (8,)), one per joint in the order (front-left, front-right, back-left, back-right) x
  (hip, knee): a **target joint velocity**, a * `MAX_JOINT_SPEED` (8 rad/s), held by PyBullet's velocity motor with
  at most `MAX_FORCE` (12 N m). Velocity motors are solved with the contacts (implicitly), which keeps 1/60 s steps
  stable where torque control would need smaller ones.
- Observation (30 float32), all in the trunk's frame (x forward, y left, z up): the unit direction to the stick (3)
  and its distance (1, metres, on the ground plane), gravity's direction (3: the body's tilt), the trunk's linear
  velocity (3, m/s) and angular velocity (3, rad/s), its height (1, m), the 8 joint angles (rad) and the 8 joint
  velocities (rad/s). The policy normalizes them (Huggy.yaml's `normalize: true`).
- Reward per decision, the course's four terms (weights in the constants below):
  1. orientation bonus: `FACING_WEIGHT` x cos(angle between the heading and the stick's direction) plus
     `APPROACH_WEIGHT` x the speed toward the stick (m/s, clipped to +-`MAX_APPROACH`): the course names it an
     orientation bonus and describes it as "getting close to the target", so it rewards both;
  2. time penalty: `TIME_PENALTY` each decision;
  3. rotation penalty: `SPIN_WEIGHT` x (yaw rate)^2 (rad/s), for spinning and turning too fast (a gait's rocking
     in pitch and roll is not penalized);
  4. reaching the stick: `REACH_REWARD` when the trunk's centre comes within `REACH_DISTANCE` of it.
- The stick lies on the ground at a random place in a 16 x 16 m field, at least 2 m from the dog; reached, it
  respawns elsewhere and the episode goes on. An episode is truncated after `MAX_DECISIONS` = 1000 decisions (50 s
  of simulated time); it never terminates. A dog lying on its side or back for `FALLEN_SECONDS` (1 s) is put back on its
  feet where it lies (a rule of ours: the time it lost is its penalty, and the episode's samples stay useful).

Training steps the dogs through `HuggyVectorEnv` (the registry's native vector env): each dog still has a world of
its own, and one step runs the worlds one by one and then the reading, rewards and observations as arrays over all
the dogs, where 20 HuggyEnv in a SyncVectorEnv spend a third of their time in per-dog Python.

`info` carries `sticks` (reached this episode) and, on a decision that reaches one, `fetch_time`: the simulated
seconds since that stick appeared (benchmarks/bench_huggy.py measures it). `render()` gives an `rgb_array` frame from
PyBullet's TinyRenderer (software, no X server) from a camera that follows the dog.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pybullet as pb
from gymnasium import spaces

# Simulation
TIME_STEP = 1.0 / 40.0
PHYSICS_STEPS = 2
SOLVER_ITERATIONS = 20  # PyBullet's default 50 costs twice the time for no visible difference in the gait
DECISION_SECONDS = TIME_STEP * PHYSICS_STEPS  # 0.05 s
MAX_DECISIONS = 1000
GRAVITY = 9.81

# Body (metres, kilograms)
TRUNK_HALF = (0.30, 0.12, 0.08)
TRUNK_MASS = 6.0
HEAD_HALF = (0.08, 0.07, 0.07)
LEG_RADIUS = 0.035
LEG_LENGTH = 0.16  # upper and lower leg, capsule axis length between the cap centres
LEG_MASS = 0.5
HIPS = ((0.22, 0.13), (0.22, -0.13), (-0.22, 0.13), (-0.22, -0.13))  # (x, y): front-left, front-right, back-left...
HIP_LIMIT = math.radians(60.0)
KNEE_LIMITS = (math.radians(-120.0), math.radians(10.0))
STAND_HEIGHT = TRUNK_HALF[2] + 2 * LEG_LENGTH + LEG_RADIUS  # trunk centre above the ground, legs straight
N_JOINTS = 8
MAX_JOINT_SPEED = 8.0  # rad/s at action 1
MAX_FORCE = 12.0  # N m
FRICTION = 1.0

# Task
FIELD_HALF = 8.0
MIN_STICK_DISTANCE = 2.0
REACH_DISTANCE = 0.6
FALLEN_SECONDS = 1.0
FALLEN_UP = 0.3  # the trunk's up axis below this (in world z): on its side or back
FALLEN_DECISIONS = int(round(FALLEN_SECONDS / DECISION_SECONDS))

# Reward terms (per decision)
FACING_WEIGHT = 0.002  # a tie-breaker: at 0.01 (as much as approach) PPO learned to turn and stand, facing the stick
APPROACH_WEIGHT = 0.03  # per m/s toward the stick: 0.6 per metre closed at 20 decisions a second
MAX_APPROACH = 3.0
TIME_PENALTY = -0.001
SPIN_WEIGHT = -0.005  # per (rad/s)^2 of turning (yaw rate)
REACH_REWARD = 1.0

OBS_SIZE = 4 + 3 + 3 + 3 + 1 + N_JOINTS + N_JOINTS  # 30


def reward_terms(
    forward: np.ndarray, to_stick: np.ndarray, velocity: np.ndarray, angular_velocity: np.ndarray, reached: Any
) -> dict[str, np.ndarray]:
    """The four reward terms of a decision, from world-frame vectors (only their x, y parts count for heading and
    approach): the trunk's forward axis, the vector from the trunk to the stick, the trunk's velocity and angular
    velocity (its z part is the yaw rate), and whether the stick was reached. Vectors are (3,) for one dog or
    (n, 3) for n dogs; each term is then a scalar array or (n,)."""
    heading = np.asarray(forward, dtype=np.float64)[..., :2]
    direction = np.asarray(to_stick, dtype=np.float64)[..., :2]
    hn, dn = np.sqrt((heading * heading).sum(-1)), np.sqrt((direction * direction).sum(-1))
    both, toward = (hn > 1e-9) & (dn > 1e-9), dn > 1e-9
    facing = np.where(both, (heading * direction).sum(-1) / np.where(both, hn * dn, 1.0), 0.0)
    speed = (np.asarray(velocity, dtype=np.float64)[..., :2] * direction).sum(-1)
    approach = np.minimum(
        np.maximum(np.where(toward, speed / np.where(toward, dn, 1.0), 0.0), -MAX_APPROACH), MAX_APPROACH
    )
    spin = np.asarray(angular_velocity, dtype=np.float64)[..., 2] ** 2  # turning about the vertical, not rocking
    return {
        "orientation": FACING_WEIGHT * facing + APPROACH_WEIGHT * approach,
        "time": np.full(spin.shape, TIME_PENALTY),
        "rotation": SPIN_WEIGHT * spin,
        "reach": np.where(reached, REACH_REWARD, 0.0),
    }


def _build_dog(client: int) -> tuple[int, list[int]]:
    """The dog as one PyBullet multibody: (body id, the 8 driven joint indices)."""
    box = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=TRUNK_HALF, physicsClientId=client)
    box_vis = pb.createVisualShape(
        pb.GEOM_BOX, halfExtents=TRUNK_HALF, rgbaColor=(0.95, 0.75, 0.25, 1), physicsClientId=client
    )
    head = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=HEAD_HALF, physicsClientId=client)
    head_vis = pb.createVisualShape(
        pb.GEOM_BOX, halfExtents=HEAD_HALF, rgbaColor=(0.98, 0.82, 0.35, 1), physicsClientId=client
    )
    leg = pb.createCollisionShape(
        pb.GEOM_CAPSULE,
        radius=LEG_RADIUS,
        height=LEG_LENGTH,
        collisionFramePosition=(0, 0, -LEG_LENGTH / 2),
        physicsClientId=client,
    )
    leg_vis = pb.createVisualShape(
        pb.GEOM_CAPSULE,
        radius=LEG_RADIUS,
        length=LEG_LENGTH,
        visualFramePosition=(0, 0, -LEG_LENGTH / 2),
        rgbaColor=(0.85, 0.6, 0.2, 1),
        physicsClientId=client,
    )
    masses: list[float] = []
    cols: list[int] = []
    vis: list[int] = []
    pos: list[tuple[float, float, float]] = []
    parents: list[int] = []
    types: list[int] = []
    axes: list[tuple[int, int, int]] = []
    # head: fixed to the trunk's front
    masses.append(0.5)
    cols.append(head)
    vis.append(head_vis)
    pos.append((TRUNK_HALF[0] + HEAD_HALF[0] * 0.6, 0.0, TRUNK_HALF[2] + HEAD_HALF[2] * 0.4))
    parents.append(0)
    types.append(pb.JOINT_FIXED)
    axes.append((0, 1, 0))
    for x, y in HIPS:
        upper = len(masses) + 1  # link indices are 1-based as parents (0 is the base)
        masses += [LEG_MASS, LEG_MASS]
        cols += [leg, leg]
        vis += [leg_vis, leg_vis]
        pos += [(x, y, -TRUNK_HALF[2]), (0.0, 0.0, -LEG_LENGTH)]
        parents += [0, upper]
        types += [pb.JOINT_REVOLUTE, pb.JOINT_REVOLUTE]
        axes += [(0, 1, 0), (0, 1, 0)]
    n = len(masses)
    body = pb.createMultiBody(
        baseMass=TRUNK_MASS,
        baseCollisionShapeIndex=box,
        baseVisualShapeIndex=box_vis,
        basePosition=(0, 0, STAND_HEIGHT),
        linkMasses=masses,
        linkCollisionShapeIndices=cols,
        linkVisualShapeIndices=vis,
        linkPositions=pos,
        linkOrientations=[(0, 0, 0, 1)] * n,
        linkInertialFramePositions=[(0, 0, 0)] * n,
        linkInertialFrameOrientations=[(0, 0, 0, 1)] * n,
        linkParentIndices=parents,
        linkJointTypes=types,
        linkJointAxis=axes,
        physicsClientId=client,
    )
    joints = list(range(1, n))  # link 0 is the head (fixed); then hip, knee per leg
    for j in joints:
        lo, hi = (-HIP_LIMIT, HIP_LIMIT) if (j - 1) % 2 == 0 else KNEE_LIMITS
        pb.changeDynamics(
            body, j, jointLowerLimit=lo, jointUpperLimit=hi, lateralFriction=FRICTION, physicsClientId=client
        )
    pb.changeDynamics(body, -1, lateralFriction=FRICTION, physicsClientId=client)
    return body, joints


def _read_dogs(dogs: list[HuggyEnv]) -> dict[str, np.ndarray]:
    """Each dog's trunk pose and velocities and joint states, as (n, ...) views of one (n, 34) array read in one
    pass; each dog keeps its row as `_state` (the serve page, the camera and the fallen check read it)."""
    rows = []
    for d in dogs:
        c = d.client
        pos, quat = pb.getBasePositionAndOrientation(d.dog, physicsClientId=c)
        vel, ang = pb.getBaseVelocity(d.dog, physicsClientId=c)
        joints = pb.getJointStates(d.dog, d.joints, physicsClientId=c)
        rot = pb.getMatrixFromQuaternion(quat, physicsClientId=c)  # world-from-body, row by row
        rows.append(pos + rot + vel + ang + tuple(j[0] for j in joints) + tuple(j[1] for j in joints))
    raw = np.array(rows)
    state = {
        "pos": raw[:, 0:3],
        "rot": raw[:, 3:12].reshape(-1, 3, 3),
        "vel": raw[:, 12:15],
        "ang": raw[:, 15:18],
        "joints": raw[:, 18:34],  # the 8 angles, then the 8 angular velocities, as the observation lays them out
    }
    for i, d in enumerate(dogs):
        d._state = {k: v[i] for k, v in state.items()}
    return state


def _to_sticks(dogs: list[HuggyEnv], state: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 3) from each trunk to its stick on the ground plane (z = 0)."""
    out = np.zeros((len(dogs), 3))
    out[:, :2] = [d.stick for d in dogs]
    out[:, :2] -= state["pos"][:, :2]
    return out


def _observations(state: dict[str, np.ndarray], to_stick: np.ndarray) -> np.ndarray:
    """(n, OBS_SIZE) float32: the layout in the module docstring, in each trunk's frame."""
    rot, n = state["rot"], len(to_stick)
    # the stick's offset, the velocity and the angular velocity in the body frame: v @ R is R^T v, row by row
    vectors = np.empty((n, 3, 3))
    vectors[:, 0], vectors[:, 1], vectors[:, 2] = to_stick, state["vel"], state["ang"]
    local = vectors @ rot
    dist = np.sqrt((to_stick * to_stick).sum(1))
    obs = np.empty((n, OBS_SIZE), dtype=np.float32)
    obs[:, 0:3] = np.divide(local[:, 0], dist[:, None], out=np.zeros((n, 3)), where=dist[:, None] > 1e-9)
    obs[:, 3] = dist
    obs[:, 4:7] = -rot[:, 2]  # gravity's direction, (0, 0, -1) in the body frame
    obs[:, 7:13] = local[:, 1:].reshape(n, 6)
    obs[:, 13] = state["pos"][:, 2]
    obs[:, 14:30] = state["joints"]
    return obs


def _step_dogs(dogs: list[HuggyEnv], actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """One decision of every dog, each in its own world: (observations, rewards, truncated, {dog: fetch seconds}
    for the dogs that reached their stick). The physics runs dog by dog; the rest is array arithmetic over all."""
    targets = np.clip(actions, -1.0, 1.0) * MAX_JOINT_SPEED
    forces = [MAX_FORCE] * N_JOINTS
    for d, target in zip(dogs, targets.tolist()):
        c = d.client
        pb.setJointMotorControlArray(
            d.dog, d.joints, pb.VELOCITY_CONTROL, targetVelocities=target, forces=forces, physicsClientId=c
        )
        for _ in range(PHYSICS_STEPS):
            pb.stepSimulation(physicsClientId=c)
        d.t += 1
    state = _read_dogs(dogs)
    to_stick = _to_sticks(dogs, state)
    reached = (to_stick * to_stick).sum(1) < REACH_DISTANCE**2
    terms = reward_terms(state["rot"][:, :, 0], to_stick, state["vel"], state["ang"], reached)
    rewards = terms["orientation"] + terms["time"] + terms["rotation"] + terms["reach"]
    fetched = {}
    for k in np.flatnonzero(reached).tolist():
        d = dogs[k]
        d.sticks += 1
        fetched[k] = (d.t - d.stick_t) * DECISION_SECONDS
        d._spawn_stick()
    up = state["rot"][:, 2, 2]
    replaced = False
    for i, d in enumerate(dogs):
        d.fallen = d.fallen + 1 if up[i] < FALLEN_UP else 0
        if d.fallen >= FALLEN_DECISIONS:  # on its side or back: back on its feet where it lies, facing the same way
            rot = state["rot"][i]
            d._place_dog(float(state["pos"][i, 0]), float(state["pos"][i, 1]), math.atan2(rot[1, 0], rot[0, 0]))
            d.fallen = 0
            replaced = True
    if replaced:
        state = _read_dogs(dogs)
    if replaced or fetched:  # a dog was put back on its feet or a stick respawned
        to_stick = _to_sticks(dogs, state)
    truncated = np.array([d.t >= d.max_decisions for d in dogs])
    return _observations(state, to_stick), rewards, truncated, fetched


class HuggyEnv(gym.Env):
    """One dog and its stick in a PyBullet world of its own: observation (30,) float32, action Box([-1, 1], (8,))
    of target joint velocities; one step = one decision of 0.05 s."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / DECISION_SECONDS))}

    def __init__(self, max_decisions: int = MAX_DECISIONS, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}")
        self.render_mode = render_mode
        self.max_decisions = int(max_decisions)
        if self.max_decisions < 1:
            raise ValueError(f"max_decisions must be at least 1, not {max_decisions!r}")
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(N_JOINTS,), dtype=np.float32)
        self.client = pb.connect(pb.DIRECT)
        pb.setGravity(0, 0, -GRAVITY, physicsClientId=self.client)
        pb.setTimeStep(TIME_STEP, physicsClientId=self.client)
        pb.setPhysicsEngineParameter(
            numSolverIterations=SOLVER_ITERATIONS, enableConeFriction=0, physicsClientId=self.client
        )
        ground = pb.createCollisionShape(pb.GEOM_PLANE, physicsClientId=self.client)
        self.ground = pb.createMultiBody(0, ground, physicsClientId=self.client)
        pb.changeDynamics(self.ground, -1, lateralFriction=FRICTION, physicsClientId=self.client)
        self.dog, self.joints = _build_dog(self.client)
        stick = pb.createVisualShape(
            pb.GEOM_CAPSULE, radius=0.03, length=0.5, rgbaColor=(0.45, 0.25, 0.1, 1), physicsClientId=self.client
        )
        self.stick_body = pb.createMultiBody(0, -1, stick, physicsClientId=self.client)  # seen, never collides
        self.stick = np.zeros(2)
        self.t = 0
        self.stick_t = 0
        self.fallen = 0
        self.sticks = 0
        self._state: dict[str, np.ndarray] = {}

    # -- world -----------------------------------------------------------------------------------------------
    def _place_dog(self, x: float, y: float, yaw: float) -> None:
        quat = pb.getQuaternionFromEuler((0, 0, yaw))
        pb.resetBasePositionAndOrientation(self.dog, (x, y, STAND_HEIGHT), quat, physicsClientId=self.client)
        pb.resetBaseVelocity(self.dog, (0, 0, 0), (0, 0, 0), physicsClientId=self.client)
        for j in self.joints:
            pb.resetJointState(self.dog, j, 0.0, 0.0, physicsClientId=self.client)

    def place_stick(self, x: float, y: float) -> None:
        """Put the stick at (x, y) on the ground (a respawn, or the serve page's click)."""
        self.stick = np.array([x, y], dtype=np.float64)
        self.stick_t = self.t
        quat = pb.getQuaternionFromEuler((0, math.pi / 2, 0.7))
        pb.resetBasePositionAndOrientation(self.stick_body, (x, y, 0.03), quat, physicsClientId=self.client)

    def _spawn_stick(self) -> None:
        here = self._state["pos"][:2] if self._state else np.zeros(2)
        while True:
            xy = self.np_random.uniform(-FIELD_HALF, FIELD_HALF, size=2)
            if np.linalg.norm(xy - here) >= MIN_STICK_DISTANCE:
                break
        self.place_stick(float(xy[0]), float(xy[1]))

    def _read(self) -> None:
        _read_dogs([self])

    def observe(self) -> np.ndarray:
        state = {k: v[None] for k, v in self._state.items()}
        return _observations(state, _to_sticks([self], state))[0]

    # -- gym API ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = self.fallen = self.sticks = 0
        self._place_dog(0.0, 0.0, float(self.np_random.uniform(-math.pi, math.pi)))
        self._state = {}
        self._read()
        self._spawn_stick()
        return self.observe(), {"sticks": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.asarray(action, dtype=np.float64).reshape(1, N_JOINTS)
        obs, rewards, truncated, fetched = _step_dogs([self], a)
        info: dict[str, Any] = {"sticks": self.sticks}
        if fetched:
            info["fetch_time"] = fetched[0]
        return obs[0], float(rewards[0]), False, bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.camera_frame()

    def camera_frame(self, width: int = 320, height: int = 240, top_down: bool = False) -> np.ndarray:
        """(H, W, 3) uint8 from PyBullet's TinyRenderer: behind and above the dog, or from high above (serve page)."""
        pos = self._state["pos"] if self._state else np.zeros(3)
        c = self.client
        if top_down:
            view = pb.computeViewMatrix((0, -0.01, 2.6 * FIELD_HALF), (0, 0, 0), (0, 1, 0), physicsClientId=c)
            fov = 45.0
        else:
            fwd = self._state["rot"][:, 0] if self._state else np.array([1.0, 0, 0])
            yaw = math.atan2(fwd[1], fwd[0])
            eye = (pos[0] - 2.2 * math.cos(yaw), pos[1] - 2.2 * math.sin(yaw), 1.4)
            view = pb.computeViewMatrix(eye, (pos[0], pos[1], 0.3), (0, 0, 1), physicsClientId=c)
            fov = 60.0
        proj = pb.computeProjectionMatrixFOV(fov, width / height, 0.1, 100.0, physicsClientId=c)
        _, _, rgba, _, _ = pb.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER, physicsClientId=c)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[:, :, :3].copy()

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            try:
                pb.disconnect(physicsClientId=self.client)
            except pb.error:
                pass
            self.client = None


class HuggyVectorEnv(gym.vector.VectorEnv):
    """`n` dogs, each in a world of its own, as one Gymnasium VectorEnv (SAME_STEP autoreset, a cut episode's last
    observation in info["final_obs"]). The same dogs as a SyncVectorEnv of n HuggyEnv seeded seed..seed+n-1, step
    for step; one step reads the worlds dog by dog and does the rest in arrays over all of them."""

    metadata = {**HuggyEnv.metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, n: int, max_decisions: int = MAX_DECISIONS):
        self.dogs = [HuggyEnv(max_decisions=max_decisions) for _ in range(n)]
        self.num_envs = n
        self.single_observation_space = self.dogs[0].observation_space
        self.single_action_space = self.dogs[0].action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        obs = [d.reset(seed=None if seed is None else seed + i)[0] for i, d in enumerate(self.dogs)]
        return np.stack(obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, N_JOINTS)
        obs, rewards, truncated, _ = _step_dogs(self.dogs, a)
        info: dict = {}
        if truncated.any():
            info = {"final_obs": obs.copy(), "_final_obs": truncated.copy()}
            for i in np.flatnonzero(truncated):
                obs[i] = self.dogs[i].reset()[0]
        return obs, rewards, np.zeros(self.num_envs, dtype=bool), truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        for d in self.dogs:
            d.close()


def make(kwargs: dict, render_mode: str | None = None, training: bool = False) -> HuggyEnv:
    """Registry builder (env kwargs: max_decisions)."""
    return HuggyEnv(render_mode=render_mode, **kwargs)
