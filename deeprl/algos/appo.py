"""Asynchronous PPO (APPO), Unit 8.2, as Sample Factory runs it (Petrenko et al. 2020, arXiv 2006.11751):

    rollout workers (processes)  step their envs in two alternating halves and write observations into shared memory
    inference (this process)     batches every waiting env's observation into one forward pass, writes the actions
    learner (a thread here)      trains on finished trajectories and publishes its weights through shared memory

so the envs never wait for the network and the network never waits for the envs (deeprl.sampler holds the shared
parts). The behaviour policy of a trajectory may be a few versions behind the learner: the *policy lag*, reported
per batch. The loss is PPO's, with Sample Factory's choices:

    ratio   = exp(log pi(a|s) - log mu(a|s))               mu: the policy version that acted
    L_pi    = -mean(min(ratio * A, clip(ratio, 1/(1+eps), 1+eps) * A))      SF's unbiased clip, eps 0.1
    L_v     = 0.5 * mean(max((V - R)^2, (V_old + clip(V - V_old, -0.2, 0.2) - R)^2))   on standardized returns
    L_expl  = 0.001 * mean(KL(pi || uniform) + KL(uniform || pi))          SF's symmetric_kl for Doom
A: GAE(0.99, 0.95) on the behaviour's values, normalized per batch; or, with_vtrace, V-trace (Espeholt et al. 2018)
with rho_bar = c_bar = 1 on the learner's own values. One epoch of one batch of 1024 steps (32 trajectories of 32),
Adam lr 1e-4 eps 1e-6, gradient norm clipped at 4. The model is deeprl.policies.recurrent's: convnet_simple + FC 512
+ GRU 512 on images, an MLP on vectors, with input and returns normalization.

`async_rl: false` runs the same parts in lock-step (inference waits for every group in a fixed order, the learner
trains as soon as a batch is complete): then a seed gives the same run every time. Asynchronous runs, as Sample
Factory's, depend on timing and are not repeatable step for step.

Frames: `n_timesteps` counts env frames as Sample Factory's train_for_env_steps does (a step at frameskip 4 is 4
frames), so Doom's course budget of 4,000,000 frames is 1,000,000 decisions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.errors import UserError
from deeprl.policies.actor_critic import load_policy_tensors, policy_tensors
from deeprl.policies.recurrent import RecurrentActorCritic, RecurrentAgent
from deeprl.sampler import Group, Sampler, Trajectories, WeightChannel, WorkerDied, default_workers
from deeprl.settings import defaults

if TYPE_CHECKING:
    import gymnasium as gym

    from deeprl.train import Run


@dataclass
class Settings:
    """Sample Factory's APPO defaults (its names), with the Doom overrides of its doom_override_defaults.

    :param n_timesteps: env frames to train (SF's train_for_env_steps: a step at frameskip 4 counts 4)
    :param num_workers: rollout worker processes (0: one per core, SF's default)
    :param num_envs_per_worker: envs each worker steps (split into worker_num_splits groups)
    :param worker_num_splits: groups per worker, stepped alternately (2: double buffering)
    :param rollout: steps per trajectory (the recurrence's length too)
    :param batch_size: steps per learner batch (a multiple of rollout)
    :param num_epochs: passes over each batch
    :param learning_rate: Adam's step size
    :param adam_eps: Adam's epsilon
    :param gamma: discount factor
    :param gae_lambda: GAE's lambda
    :param ppo_clip_ratio: epsilon of SF's clip(ratio, 1/(1+eps), 1+eps)
    :param ppo_clip_value: clip of the value update around the behaviour's values (standardized units)
    :param value_loss_coeff: value loss weight
    :param exploration_loss: symmetric_kl (SF's for Doom) or entropy
    :param exploration_loss_coeff: its weight
    :param max_grad_norm: gradient norm clip
    :param normalize_input: running mean/std of the inputs (after obs_scale)
    :param normalize_returns: value head on standardized returns
    :param obs_scale: divide observations by this first (0: 255 for uint8 images, else 1)
    :param with_vtrace: V-trace targets and advantages instead of GAE (rho_bar = c_bar = 1)
    :param max_policy_lag: steps acted by a policy more than this many versions old are left out of the loss
    :param rnn_size: the GRU's width (0: no GRU)
    :param encoder_mlp_layers: the MLP encoder's widths for vector observations
    :param async_rl: false: lock-step and repeatable (see the module's docstring)
    :param checkpoint_seconds: seconds between checkpoints
    :param torch_threads: torch's threads per operator (the learner thread and the inference thread each take a
        core already; more threads per operator only make them wait for each other)
    """

    n_timesteps: int = 4_000_000
    num_workers: int = 0
    num_envs_per_worker: int = 8
    worker_num_splits: int = 2
    rollout: int = 32
    batch_size: int = 1024
    num_epochs: int = 1
    learning_rate: float = 1e-4
    adam_eps: float = 1e-6
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ppo_clip_ratio: float = 0.1
    ppo_clip_value: float = 0.2
    value_loss_coeff: float = 0.5
    exploration_loss: str = "symmetric_kl"
    exploration_loss_coeff: float = 0.001
    max_grad_norm: float = 4.0
    normalize_input: bool = True
    normalize_returns: bool = True
    obs_scale: float = 0.0
    with_vtrace: bool = False
    max_policy_lag: int = 1000
    rnn_size: int = 512
    encoder_mlp_layers: Any = (512, 512)
    async_rl: bool = True
    checkpoint_seconds: float = 60.0
    torch_threads: int = 1


DEFAULTS = defaults(Settings)
TAGS = ["appo", "sample-factory-style", "custom-implementation"]


def gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over trajectories: rewards, dones [B, T], values [B, T+1] (the last the bootstrap) -> (advantages,
    returns) [B, T]. A step with done=1 ended its episode: nothing after it counts."""
    T = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        keep = 1.0 - dones[:, t]
        delta = rewards[:, t] + gamma * values[:, t + 1] * keep - values[:, t]
        last = delta + gamma * lam * keep * last
        adv[:, t] = last
    return adv, adv + values[:, :T]


def vtrace(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    log_rhos: torch.Tensor,
    gamma: float,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """V-trace (IMPALA, Espeholt et al. 2018, eq. 1): rewards, dones, log_rhos = log pi - log mu [B, T], values
    [B, T+1] -> (targets v_s, policy-gradient advantages rho_s (r_s + gamma v_{s+1} - V(x_s))) [B, T]:

        v_s = V(x_s) + delta_s + gamma c_s (v_{s+1} - V(x_{s+1})),  delta_s = rho_s (r_s + gamma V(x_{s+1}) - V(x_s))
    with rho_s = min(rho_bar, pi/mu), c_s = min(c_bar, pi/mu), and gamma 0 after a step that ended its episode."""
    T = rewards.shape[1]
    ratio = torch.exp(log_rhos)
    rho, c = ratio.clamp(max=rho_bar), ratio.clamp(max=c_bar)
    disc = gamma * (1.0 - dones)
    deltas = rho * (rewards + disc * values[:, 1:] - values[:, :T])
    diff = torch.zeros_like(rewards)  # v_s - V(x_s)
    acc = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        acc = deltas[:, t] + disc[:, t] * c[:, t] * acc
        diff[:, t] = acc
    vs = values[:, :T] + diff
    vs_next = torch.cat([vs[:, 1:], values[:, T:]], 1)
    return vs, rho * (rewards + disc * vs_next - values[:, :T])


def exploration(logits: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(the exploration loss to add, the mean entropy): symmetric_kl = KL(pi||U) + KL(U||pi), or -entropy."""
    log_p = torch.log_softmax(logits, -1)
    p = log_p.exp()
    entropy = -(p * log_p).sum(-1).mean()
    if kind == "entropy":
        return -entropy, entropy
    log_u = -float(np.log(logits.shape[-1]))
    kl_pu = (p * (log_p - log_u)).sum(-1)
    kl_up = (np.exp(log_u) * (log_u - log_p)).sum(-1)
    return (kl_pu + kl_up).mean(), entropy


def appo_loss(model: RecurrentActorCritic, batch: dict[str, torch.Tensor], hp: Settings, version: int) -> tuple:
    """The loss of one batch of trajectories (see the module's docstring) and its diagnostics."""
    T = batch["actions"].shape[1]
    logits, values = model.unroll(batch["obs"], batch["h0"], batch["dones"])  # [B, T+1, A], [B, T+1]
    log_all = torch.log_softmax(logits[:, :T], -1)
    log_prob = log_all.gather(-1, batch["actions"][..., None]).squeeze(-1)
    log_ratio = log_prob - batch["log_probs"]
    lag = version - batch["versions"]
    mask = (lag <= hp.max_policy_lag).float()
    n = mask.sum().clamp(min=1.0)
    with torch.no_grad():
        if hp.with_vtrace:  # targets from the learner's own values, corrected for the behaviour's lag
            v_now = model.denormalize(values)
            targets, adv = vtrace(batch["rewards"], v_now, batch["dones"], log_ratio, hp.gamma)
        else:  # GAE on the values the behaviour policy computed
            adv, targets = gae(
                batch["rewards"], model.denormalize(batch["values"]), batch["dones"], hp.gamma, hp.gae_lambda
            )
        if model.returns_norm is not None:
            model.returns_norm.update(targets)
            targets = model.returns_norm.normalize(targets)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = torch.exp(log_ratio)
    eps = hp.ppo_clip_ratio
    clipped = ratio.clamp(1.0 / (1.0 + eps), 1.0 + eps)
    pg_loss = (-torch.min(ratio * adv, clipped * adv) * mask).sum() / n
    v, v_old = values[:, :T], batch["values"][:, :T]
    v_clipped = v_old + (v - v_old).clamp(-hp.ppo_clip_value, hp.ppo_clip_value)
    v_loss = (torch.max((v - targets).pow(2), (v_clipped - targets).pow(2)) * mask).sum() / n
    expl, entropy = exploration(logits[:, :T], hp.exploration_loss)
    loss = pg_loss + hp.value_loss_coeff * v_loss + hp.exploration_loss_coeff * expl
    with torch.no_grad():
        stats = {
            "policy_loss": float(pg_loss),
            "value_loss": float(v_loss),
            "entropy": float(entropy),
            "approx_kl": float(((ratio - 1) - log_ratio).mean()),
            "clip_fraction": float(((ratio - 1).abs() > eps).float().mean()),
            "policy_lag": float(lag.float().mean()),
            "policy_lag_max": float(lag.max()),
        }
    return loss, stats


class Learner:
    """The learner: trains `model` on batches of trajectories and publishes its weights after each step. In the
    asynchronous mode it runs as a thread (torch's operators release the GIL, so it trains while this process's
    main thread serves inference); `step()` is one batch, whichever thread calls it."""

    def __init__(
        self,
        model: RecurrentActorCritic,
        optimizer: torch.optim.Adam,
        trajectories: Trajectories,
        channel: WeightChannel,
        hp: Settings,
        version: int,
    ):
        self.model, self.optimizer, self.trajectories, self.channel, self.hp = (
            model,
            optimizer,
            trajectories,
            channel,
            hp,
        )
        self.per_batch = hp.batch_size // hp.rollout
        self.device = next(model.parameters()).device
        self.version = version
        self.stats: dict[str, float] = {}
        self.lock = threading.Lock()  # held for a whole step: a checkpoint takes it to read a consistent model
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.seconds = 0.0

    def step(self) -> None:
        data = self.trajectories.take(self.per_batch)
        with self.lock:
            t0 = time.perf_counter()
            batch = {k: torch.from_numpy(v).to(self.device) for k, v in data.items()}
            self.model.train()
            for _ in range(self.hp.num_epochs):
                # the input statistics from every 4th frame of the batch (consecutive frames are near copies; the
                # whole batch of 128x72 images costs a third of the step's forward pass for the same estimate)
                self.model.update_obs_norm(batch["obs"].reshape(-1, *batch["obs"].shape[2:]), every=4)
                loss, stats = appo_loss(self.model, batch, self.hp, self.version)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
                self.optimizer.step()
            self.version += 1
            self.channel.publish(self.model.state_dict(), self.version)
            self.stats = stats
            self.seconds += time.perf_counter() - t0

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.trajectories.wait(self.per_batch, timeout=0.1):
                    self.step()
        except BaseException as exc:  # handed to the main thread, which stops the run and raises it
            self.error = exc

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="deeprl-learner", daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _check(hp: Settings) -> None:
    for key in ("n_timesteps", "num_envs_per_worker", "worker_num_splits", "rollout", "batch_size", "num_epochs"):
        value = getattr(hp, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"{key} must be a positive whole number, not {value!r}.")
    if hp.num_workers < 0:
        raise UserError(f"num_workers must be 0 (one per core) or more, not {hp.num_workers!r}.")
    if hp.num_envs_per_worker % hp.worker_num_splits:
        raise UserError(
            f"num_envs_per_worker ({hp.num_envs_per_worker}) must be a multiple of worker_num_splits "
            f"({hp.worker_num_splits})."
        )
    if hp.batch_size % hp.rollout:
        raise UserError(f"batch_size ({hp.batch_size}) must be a multiple of rollout ({hp.rollout}).")
    if hp.exploration_loss not in ("symmetric_kl", "entropy"):
        raise UserError(f"exploration_loss must be symmetric_kl or entropy, not {hp.exploration_loss!r}.")
    for key in ("gamma", "gae_lambda"):
        if not 0 <= getattr(hp, key) <= 1:
            raise UserError(f"{key} must lie between 0 and 1, not {getattr(hp, key)!r}.")


def _spaces(env_id: str, env_kwargs: dict) -> tuple[gym.Space, gym.Space, int]:
    """The env's spaces and frames per step (its frame_skip, else 1), from one env built and closed."""
    from deeprl.envs import make_env

    env = make_env(env_id, env_kwargs, training=True)
    try:
        frame_skip = int(getattr(env.unwrapped, "frame_skip", 1) or 1)
        return env.observation_space, env.action_space, frame_skip
    finally:
        env.close()


def build_model(obs_space: gym.Space, action_space: gym.Space, hp: Settings) -> RecurrentActorCritic:
    import gymnasium as gym

    if not isinstance(action_space, gym.spaces.Discrete):
        raise UserError(f"APPO here takes envs with Discrete actions; this one's are {type(action_space).__name__}.")
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) not in (1, 3):
        raise UserError("APPO here takes image (HxWxC) or vector observations.")
    image = len(obs_space.shape) == 3
    scale = hp.obs_scale or (255.0 if image and obs_space.dtype == np.uint8 else 1.0)
    return RecurrentActorCritic(
        obs_space.shape,
        int(action_space.n),
        mlp_layers=list(hp.encoder_mlp_layers),
        rnn_size=hp.rnn_size,
        normalize_input=hp.normalize_input,
        normalize_returns=hp.normalize_returns,
        obs_scale=scale,
    )


def train(run: Run) -> None:
    hp = run.settings(Settings)
    _check(hp)
    torch.set_num_threads(max(1, hp.torch_threads))
    obs_space, action_space, frame_skip = _spaces(run.env_id, run.env_kwargs)
    obs_shape = tuple(obs_space.shape or ())
    # CUDA when present (--device): the learner and the inference both run there, as Sample Factory's do
    device = torch.device(run.device)
    model = build_model(obs_space, action_space, hp).to(device)  # the learner's
    actor = build_model(obs_space, action_space, hp).to(device).eval()  # inference's copy, refreshed from the channel
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate, eps=hp.adam_eps)
    rng = np.random.default_rng(run.seed)
    frames, version, env_seed = 0, 0, run.seed
    if run.resumed:
        tensors, state = run.resumed
        frames, version = state["frames"], state["version"]
        load_policy_tensors(model, tensors, run.env_id)
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        run.restore_rng(tensors, state, rng)
        env_seed = run.seed + 1_000_003 * (version + 1)  # env states are not saved: fresh episodes, new seeds
    actor.load_state_dict(model.state_dict())
    channel = WeightChannel(model.state_dict())
    channel.publish(model.state_dict(), version)
    n_workers = hp.num_workers or default_workers()
    sampler = Sampler(
        run.env_id,
        run.env_kwargs,
        obs_shape,
        obs_space.dtype,
        n_workers=n_workers,
        envs_per_worker=hp.num_envs_per_worker,
        splits=hp.worker_num_splits,
        seed=env_seed,
    )
    n_envs = sampler.n_envs
    trajectories = Trajectories(
        n_envs, hp.rollout, obs_shape, obs_space.dtype, hp.rnn_size, capacity=2 * hp.batch_size // hp.rollout
    )
    learner = Learner(model, optimizer, trajectories, channel, hp, version)
    hidden = np.zeros((n_envs, max(hp.rnn_size, 1)), dtype=np.float32)
    stepped = np.zeros(n_envs, dtype=bool)  # envs that have taken a step (their outcome is in shared memory)
    returns: list[float] = []
    episodes = 0
    policy_config = {"recurrent": model.config(), "frame_skip": frame_skip}
    writer = run.writer()
    started = time.perf_counter()
    frames_at_start = frames
    failure: list[str] = []

    def checkpoint() -> None:
        with learner.lock:
            opt_tensors, opt_state = optimizer_to_tensors(optimizer)
            run.checkpoint(
                {**policy_tensors(model), **opt_tensors},
                {"frames": frames, "version": learner.version, "optimizer": opt_state},
                rng,
            )

    def save_model(stopped: bool) -> None:
        elapsed = time.perf_counter() - started
        with learner.lock:
            tensors = policy_tensors(model)
        run.save_model(
            tensors,
            policy_config,
            stopped=stopped,
            timesteps=frames,
            env_frames=frames,
            policy_versions=learner.version,
            episodes=episodes,
            learner_seconds=round(learner.seconds, 3),
            frames_per_second=round((frames - frames_at_start) / elapsed, 1) if elapsed > 0 else None,
        )

    def close() -> None:
        learner.join()
        sampler.close()

    def snapshot() -> tuple[dict, dict]:
        with learner.lock:
            return policy_tensors(model), policy_config

    def act(groups: list[Group]) -> None:
        """One batched forward pass for these groups' envs; their actions go back to shared memory."""
        nonlocal version, episodes
        arrays = sampler.arrays
        envs = np.concatenate([np.arange(g.start, g.stop) for g in groups])
        obs, rewards, dones = arrays["obs"][envs], arrays["rewards"][envs], arrays["dones"][envs]
        trajectories.outcome(envs, rewards, dones, stepped[envs])
        ended = dones & stepped[envs]
        for e in envs[ended]:
            returns.append(float(arrays["episode_return"][e]))
            episodes += 1
        hidden[envs[ended]] = 0.0  # a new episode starts from a zero state
        version, weights = channel.pull(version)
        if weights is not None:
            actor.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})  # (copied to its device)
        h_in = hidden[envs]
        with torch.inference_mode():
            logits, values, h_out = actor.step(torch.from_numpy(obs).to(device), torch.from_numpy(h_in).to(device))
            log_p = torch.log_softmax(logits, -1).cpu().numpy()
            values, h_out = values.cpu(), h_out.cpu()
        p = np.exp(log_p)
        u = rng.random(len(envs))[:, None]
        actions = np.minimum((np.cumsum(p, 1) < u).sum(1), p.shape[1] - 1)
        log_probs = log_p[np.arange(len(envs)), actions]
        h_rec = h_in if hp.rnn_size else np.zeros((len(envs), 0), np.float32)
        while not trajectories.record(envs, obs, h_rec, actions, log_probs, values.numpy(), version):
            # every slot is full and waits for the learner (the bound on the policy lag)
            if not hp.async_rl:
                learner.step()  # lock-step: the learner trains now, in this thread
            elif not trajectories.wait_free(trajectories.full(envs), timeout=0.1) and learner.error is not None:
                raise learner.error
        if hp.rnn_size:
            hidden[envs] = h_out.numpy()
        stepped[envs] = True
        arrays["actions"][envs] = actions
        sampler.step(groups)

    total = hp.n_timesteps
    order = list(sampler.groups)  # lock-step: every group in this order, each round
    with run.loop(
        total,
        "frames",
        initial=frames,
        checkpoint=checkpoint,
        save=save_model,
        close=close,
        checkpoint_seconds=hp.checkpoint_seconds,
        checkpoint_gap=min(hp.checkpoint_seconds, 5.0),
    ) as loop:
        if hp.async_rl:
            learner.start()
        logged = learner.version
        try:
            while frames < total and not run.stop_requested:
                if hp.async_rl:
                    groups = sampler.ready(timeout=0.1)
                    if learner.error is not None:
                        raise learner.error
                else:
                    groups = [g for g in order if _wait_for(sampler, g, run)]
                    if len(groups) < len(order):
                        break  # stopped while waiting
                if not groups:
                    continue
                act(groups)
                new = sum(g.stop - g.start for g in groups) * frame_skip
                frames += new
                if not hp.async_rl and trajectories.ready() >= learner.per_batch:
                    learner.step()
                stats = learner.stats
                mean = float(np.mean(returns[-100:])) if returns else None
                if loop.update(new, frames, snapshot, episode_return=mean, lag=stats.get("policy_lag")):
                    break
                if learner.version != logged and stats:
                    logged = learner.version
                    _log(writer, frames, stats, returns, (frames - frames_at_start) / (time.perf_counter() - started))
                loop.checkpoint_if_due(frames)
        except WorkerDied as exc:
            failure.append(str(exc))
            run.stop_requested = True  # the frame saves the checkpoint and the model as they are, marked stopped
    if failure:
        raise UserError(f"{failure[0]} The checkpoint in {run.run_dir} is usable: resume with --resume.")


def _wait_for(sampler: Sampler, group: Group, run: Run) -> bool:
    """Lock-step: wait for this group's results; False when the run was stopped meanwhile."""
    while not sampler.ready_one(group, timeout=0.1):
        if run.stop_requested:
            return False
    return True


def _log(writer: Any, frames: int, stats: dict, returns: list[float], fps: float) -> None:
    items = [(f"train/{k}", v) for k, v in stats.items()]
    items.append(("perf/fps", fps))
    if returns:
        items.append(("rollout/ep_rew_mean", float(np.mean(returns[-100:]))))
    writer.add_scalars(items, frames)


def load_agent(config: dict, tensors: dict) -> RecurrentAgent:
    """The agent for `deeprl enjoy`/`evaluate`/the leaderboard: the model checked against the env's spaces."""
    from deeprl.envs import make_env

    env = make_env(config["env_id"], config.get("env_kwargs") or {})
    try:
        obs_space, action_space = env.observation_space, env.action_space
        play_skip = int(getattr(env.unwrapped, "frame_skip", 1) or 1)
    finally:
        env.close()
    pconf = (config.get("policy") or {}).get("recurrent")
    n_actions = int(getattr(action_space, "n", -1))
    model = RecurrentActorCritic.from_config(pconf or {}, tuple(obs_space.shape or ()), n_actions)
    load_policy_tensors(model, tensors, config["env_id"])
    # trained at frameskip 4, played at 1 (Doom's evaluation): each decision is held for 4 frames, as Sample
    # Factory's enjoy repeats it (render_action_repeat), so the policy sees the game at the pace it learned
    trained_skip = (config.get("policy") or {}).get("frame_skip", 1)
    if isinstance(trained_skip, bool) or not isinstance(trained_skip, int) or not 1 <= trained_skip <= 64:
        raise UserError("The model's frame_skip must be a whole number from 1 to 64.")
    repeat = max(1, trained_skip // max(1, play_skip))
    seed = config.get("seed")
    return RecurrentAgent(model, config, seed=seed if isinstance(seed, int) and seed >= 0 else 0, action_repeat=repeat)
