"""Deep Q-Network (Unit 3; Mnih et al. 2015), with Stable-Baselines3's defaults so RL-Zoo's dqn.yml files mean
the same thing here.

    y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')         (Double DQN: Q_target(s', argmax_a' Q(s', a')))
    loss = Huber(Q(s, a), y);  Adam;  gradient norm clipped at max_grad_norm
    epsilon: linear from exploration_initial_eps to exploration_final_eps over exploration_fraction of the run
    every train_freq vector steps after learning_starts: gradient_steps updates on batch_size samples
    every target_update_interval env steps: Q_target <- tau * Q + (1 - tau) * Q_target

Pixels go through the Nature CNN, vectors through an MLP (net_arch, ReLU, as SB3's QNetwork); `dueling` splits
the head into value and advantage streams. Counting follows SB3: `n_timesteps`, `learning_starts`,
`exploration_fraction` and `target_update_interval` are in env steps (all envs together), `train_freq` in
vector steps. The replay buffer (deeprl.buffers) stores Atari frames once each.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deeprl.buffers import FrameReplayBuffer, ReplayBuffer
from deeprl.checkpoint import optimizer_from_tensors
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.settings import Linear, Rate, defaults, load, rate_at
from deeprl.train import whole_batches

if TYPE_CHECKING:
    from deeprl.train import Run


@dataclass
class Settings:
    """SB3's DQN settings, so RL-Zoo's dqn.yml files mean the same thing here (hyperparams/dqn.yml: per env).

    :param n_timesteps: env steps to train (all envs together)
    :param policy: RL-Zoo's CnnPolicy / MlpPolicy, checked against the observations ("auto": from them)
    :param env_wrapper: RL-Zoo's AtariWrapper: deeprl always preprocesses Atari that way
    :param frame_stack: RL-Zoo's frame_stack: 4 for Atari (what the env stacks)
    :param optimize_memory_usage: accepted: the buffer always stores each frame once
    :param policy_kwargs: RL-Zoo's "dict(net_arch=[256, 256])", read for net_arch and dueling
    :param buffer_size: transitions the replay memory holds
    :param learning_rate: Adam's step size, or lin_X (annealed from X to 0 over the run)
    :param batch_size: transitions per gradient step
    :param learning_starts: env steps of uniform random actions before the first update
    :param gamma: discount factor
    :param tau: target update coefficient (1: a hard copy)
    :param train_freq: vector steps between updates (RL-Zoo's [4, "step"] is read as 4)
    :param gradient_steps: gradient steps per update (-1: as many as env steps collected)
    :param target_update_interval: env steps between target updates
    :param exploration_fraction: share of the run over which epsilon falls to its final value
    :param exploration_initial_eps: epsilon at the start
    :param exploration_final_eps: epsilon after exploration_fraction of the run
    :param max_grad_norm: gradient norm clip
    :param n_envs: envs stepped together
    :param net_arch: MLP hidden layers for vector observations (None: [64, 64], SB3's); Atari: the Nature CNN
    :param double_q: Double DQN's target
    :param dueling: value and advantage streams
    :param save_replay_buffer: keep the replay memory in checkpoints (a resumed run goes on with it)
    :param checkpoint_freq: env steps between checkpoints
    :param checkpoint_seconds: also checkpoint after this many seconds of wall-clock (0: only by steps)
    :param eval_freq: env steps between evaluations by the course protocol, into evaluations.csv (0: none)
    :param n_eval_episodes: episodes per evaluation (0: the env's protocol, 10 for Atari)
    :param torch_threads: "auto" (pixels: every core for the Nature CNN's update, as torch's default; vectors: 1)
    """

    n_timesteps: int = 1_000_000
    policy: str = "auto"
    env_wrapper: Any = None
    frame_stack: int | None = None
    optimize_memory_usage: bool = False
    policy_kwargs: Any = None
    buffer_size: int = 1_000_000
    learning_rate: Rate = 1e-4
    batch_size: int = 32
    learning_starts: int = 100
    gamma: float = 0.99
    tau: float = 1.0
    train_freq: Any = 4
    gradient_steps: int = 1
    target_update_interval: int = 10_000
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    n_envs: int = 1
    net_arch: Any = None
    double_q: bool = False
    dueling: bool = False
    save_replay_buffer: bool = False
    checkpoint_freq: int = 100_000
    checkpoint_seconds: int = 0
    eval_freq: int = 0
    n_eval_episodes: int = 0
    torch_threads: Any = "auto"


DEFAULTS = defaults(Settings)
TAGS = ["dqn", "deep-q-learning", "custom-implementation"]
REPLAY_FILE = "replay_buffer.safetensors"


# ---------------------------------------------------------------------------------------------------------------
# RL-Zoo's forms checked against what deeprl builds


def check_hyperparams(hp: dict, is_atari: bool) -> Settings:
    """The run's settings, checked against what deeprl builds for this env, with RL-Zoo's forms resolved
    (policy_kwargs, train_freq [4, "step"], torch_threads "auto")."""
    s = load(Settings, hp)
    wrappers = [s.env_wrapper] if isinstance(s.env_wrapper, (str, dict)) else list(s.env_wrapper or [])
    for w in wrappers:
        name = next(iter(w)) if isinstance(w, dict) else str(w)
        if not name.endswith("AtariWrapper"):
            raise UserError(
                f"env_wrapper {name} is not supported; deeprl builds the course's envs itself "
                "(only AtariWrapper, which it applies to Atari games, may be named)."
            )
        if not is_atari:
            raise UserError("env_wrapper AtariWrapper is for Atari games; remove it for this env.")
    if s.frame_stack not in (None, 4):
        raise UserError(
            f"frame_stack {s.frame_stack} is not supported; Atari games are stacked 4 frames "
            "deep (remove frame_stack or set it to 4)."
        )
    if s.frame_stack == 4 and not is_atari:
        raise UserError("frame_stack is for Atari games here; remove it for this env.")
    policy = s.policy or "auto"
    if policy not in ("auto", "CnnPolicy", "MlpPolicy"):
        raise UserError(f"policy {policy} is not known; use CnnPolicy (Atari) or MlpPolicy (vector observations).")
    if policy == "MlpPolicy" and is_atari:
        raise UserError("MlpPolicy cannot read Atari frames; use policy: CnnPolicy.")
    if policy == "CnnPolicy" and not is_atari:
        raise UserError("CnnPolicy needs image observations; use policy: MlpPolicy for this env.")
    kw = s.policy_kwargs
    if isinstance(kw, str):
        from deeprl.policies import parse_call_kwargs

        kw = parse_call_kwargs(kw, "policy_kwargs")
    if kw is not None and not isinstance(kw, dict):
        raise UserError(f"policy_kwargs must be a mapping such as dict(net_arch=[256, 256]), not {kw!r}.")
    arch, dueling = s.net_arch, s.dueling
    for key, value in (kw or {}).items():
        if key == "net_arch":
            arch = value
        elif key == "dueling":
            dueling = bool(value)
        elif key in ("activation_fn", "activation") and str(value).lower() != "relu":
            raise UserError("deeprl's DQN uses ReLU (SB3's default); remove activation_fn from policy_kwargs.")
        elif key not in ("activation_fn", "activation"):
            raise UserError(f"policy_kwargs {key} is not supported by deeprl's DQN (net_arch and dueling are).")
    arch = [64, 64] if arch is None else arch
    if not (isinstance(arch, list) and all(isinstance(h, int) and h > 0 for h in arch)):
        raise UserError(f"net_arch must be a list of positive layer sizes such as [256, 256], not {arch!r}.")
    tf = s.train_freq
    if isinstance(tf, (list, tuple)):
        if len(tf) != 2 or str(tf[1]) != "step":
            raise UserError(f"train_freq {list(tf)} is not supported; give a number of steps (e.g. 4).")
        tf = tf[0]
    threads = s.torch_threads
    if threads in (None, "auto"):
        # the batch-32 convolutions of the update run 1.8x faster on 2 threads; a 64-unit MLP's run slower
        threads = len(os.sched_getaffinity(0)) if is_atari else 1
    s = dataclasses.replace(
        s,
        net_arch=arch,
        dueling=dueling,
        train_freq=load_int("train_freq", tf),
        torch_threads=load_int("torch_threads", threads),
    )
    if s.gradient_steps == 0 or s.gradient_steps < -1:
        raise UserError("gradient_steps must be a positive number (or -1: as many as env steps collected).")
    for key in ("n_timesteps", "buffer_size", "batch_size", "train_freq", "n_envs", "target_update_interval"):
        if getattr(s, key) < 1:
            raise UserError(f"{key} must be at least 1.")
    if not 0 < s.exploration_fraction <= 1:
        raise UserError("exploration_fraction must be in (0, 1].")
    if s.buffer_size < s.n_envs:
        raise UserError("buffer_size must be at least n_envs.")
    return s


def load_int(name: str, value: Any) -> int:
    from deeprl.settings import convert

    return convert(name, value, int)


def learning_rate_at(lr: Rate, progress: float) -> float:
    """The learning rate `progress` (0 to 1) of the way through the run."""
    return rate_at(lr, 1.0 - progress)


def epsilon(step: int, hp: Settings) -> float:
    """SB3's linear schedule: initial -> final over the first exploration_fraction of n_timesteps, then final."""
    progress = step / hp.n_timesteps
    start, end, frac = hp.exploration_initial_eps, hp.exploration_final_eps, hp.exploration_fraction
    if progress > frac:
        return end
    return start + progress * (end - start) / frac


# ---------------------------------------------------------------------------------------------------------------
# Network


class QNetwork(nn.Module):
    """Q-values from a policy config: {"kind": "cnn"|"mlp", "obs_shape", "n_actions", "net_arch", "dueling"}."""

    def __init__(self, policy: dict):
        from deeprl.nets import NatureCNN, mlp

        super().__init__()
        self.kind = policy["kind"]
        n = policy["n_actions"]
        self.body: nn.Module
        if self.kind == "cnn":
            cnn = NatureCNN(policy["obs_shape"][0], frame_hw=tuple(policy["obs_shape"][1:]))
            self.body, width = cnn, cnn.features
        else:
            arch = list(policy["net_arch"])
            self.body = mlp(int(np.prod(policy["obs_shape"])), arch, None, activation="relu", init=False)
            width = arch[-1] if arch else int(np.prod(policy["obs_shape"]))
        self.dueling = bool(policy.get("dueling"))
        self.q = nn.Linear(width, n)
        if self.dueling:
            self.v = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            x = x.reshape(x.shape[0], -1).float()
        h = self.body(x)
        if self.dueling:  # Wang et al. 2016: Q = V + A - mean(A)
            a = self.q(h)
            return self.v(h) + a - a.mean(1, keepdim=True)
        return self.q(h)


def build_qnet(policy: dict) -> QNetwork:
    net = QNetwork(policy)
    if policy["kind"] == "cnn":
        # SB3's (and CleanRL's) DQN keep PyTorch's default initialisation of the Nature CNN; the shared NatureCNN
        # starts orthogonal (the PPO recipe)
        for m in net.body.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
        # (Module.to takes memory_format at run time; torch's typed overloads leave it out)
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # oneDNN convolutions run faster on NHWC on CPU
    return net


# ---------------------------------------------------------------------------------------------------------------
# Training


def train(run: Run) -> None:
    import torch.nn.functional as F

    from deeprl.envs.vector import make_vec_env
    from deeprl.nets import Adam, clip_grad_norm, flush_denormals, set_threads

    probe = make_env(run.env_id, run.env_kwargs, training=True)
    from deeprl.envs.atari import is_atari

    atari = is_atari(probe)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    del probe  # its emulator stays resident otherwise, for the whole run
    if not hasattr(act_space, "n"):
        raise UserError(f"DQN needs discrete actions; {run.env_id} has {act_space}. Try --algo ppo.")
    hp = check_hyperparams(run.hyperparams, atari)
    pixels = len(obs_space.shape) == 3 and obs_space.dtype == np.uint8
    policy: dict[str, Any] = {
        "kind": "cnn" if pixels else "mlp",
        "obs_shape": list(obs_space.shape),
        "n_actions": int(act_space.n),
        "net_arch": list(hp.net_arch) if not pixels else [],
        "dueling": bool(hp.dueling),
        "eval_eps": hp.exploration_final_eps,
    }
    set_threads(max(hp.torch_threads, 1))
    flush_denormals()
    if pixels:  # beside a replay memory of frames every MB counts (before torch's threads and TensorBoard's start)
        _one_heap()
    n_envs, total = hp.n_envs, hp.n_timesteps

    q = build_qnet(policy)
    q_target = build_qnet(policy)
    q_target.load_state_dict(q.state_dict())
    q_target.requires_grad_(False)
    lr0 = learning_rate_at(hp.learning_rate, 0.0)
    # deeprl.nets.Adam: torch.optim.Adam's arithmetic and state format without importing torch._dynamo (70 MB of
    # resident memory, a tenth of a 100k Atari buffer)
    params = list(q.parameters())
    optimizer = Adam(params, lr=lr0)
    buffer: FrameReplayBuffer | ReplayBuffer
    if pixels:
        buffer = FrameReplayBuffer(hp.buffer_size, n_envs, obs_space.shape)
    else:
        buffer = ReplayBuffer(hp.buffer_size, n_envs, obs_space.shape, np.float32)
    rng = np.random.default_rng(run.seed)
    steps, updates, vec_steps, episodes = 0, 0, 0, 0
    replay_path = Path(run.run_dir) / REPLAY_FILE
    seconds0 = 0.0  # training wall-clock before this process (a resumed run's curve continues its time axis)
    if run.resumed:
        tensors, state = run.resumed
        q.load_state_dict({k[2:]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith("q.")})
        q_target.load_state_dict(
            {k[7:]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith("target.")}
        )
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        steps, updates, vec_steps, episodes = (state[k] for k in ("timesteps", "updates", "vec_steps", "episodes"))
        seconds0 = float(state.get("seconds", 0.0))
        run.restore_rng(tensors, state, rng)
        if hp.save_replay_buffer and replay_path.exists():
            buffer.load(replay_path)
        # the checkpoint's arrays (weights, target, Adam moments: 5 copies of the network) are copied in by now
        run.resumed = None
        del tensors, state

    venv = make_vec_env(run.env_id, n_envs, seed=run.seed + steps, env_kwargs=run.env_kwargs, training=True)
    obs, _ = venv.reset(seed=run.seed + steps)
    target_every = max(hp.target_update_interval // n_envs, 1)
    gamma, batch_size, tau = hp.gamma, hp.batch_size, hp.tau
    grad_steps = hp.gradient_steps if hp.gradient_steps > 0 else hp.train_freq * n_envs
    ep_return, ep_len = np.zeros(n_envs), np.zeros(n_envs, dtype=np.int64)
    recent: list[float] = []
    writer = run.writer()
    log_path, eval_path = Path(run.run_dir) / "episodes.csv", Path(run.run_dir) / "evaluations.csv"
    # rows written after the checkpoint a run resumes from are written again as it replays those steps
    _csv_upto(log_path, "timesteps,return,length,seconds", steps)
    log = open(log_path, "a")
    eval_every = hp.eval_freq
    if eval_every:
        _csv_upto(eval_path, "timesteps,mean_reward,std_reward,result,n_episodes,seconds", steps)
    next_eval = (steps // eval_every + 1) * eval_every if eval_every else None
    _release_free_memory()
    t0 = time.perf_counter() - seconds0

    def update(batch: dict) -> torch.Tensor:
        """One gradient step on `batch`; returns the loss."""
        o = torch.from_numpy(batch["obs"])
        o2 = torch.from_numpy(batch["next_obs"])
        if pixels:
            o, o2 = o.contiguous(memory_format=torch.channels_last), o2.contiguous(memory_format=torch.channels_last)
        a = torch.from_numpy(batch["actions"])
        r = torch.from_numpy(batch["rewards"])
        not_done = torch.from_numpy(~batch["terminated"]).float()
        with torch.no_grad():
            q_next = q_target(o2)
            if hp.double_q:
                best = q(o2).argmax(1, keepdim=True)
                q_next = q_next.gather(1, best).squeeze(1)
            else:
                q_next = q_next.max(1).values
            y = r + gamma * not_done * q_next
        q_sa = q(o).gather(1, a[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q_sa, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(params, hp.max_grad_norm)
        optimizer.step()
        return loss.detach()

    def sync_target() -> None:
        with torch.no_grad():
            if tau >= 1.0:
                for p_t, p in zip(q_target.parameters(), q.parameters()):
                    p_t.copy_(p)
            else:
                for p_t, p in zip(q_target.parameters(), q.parameters()):
                    p_t.lerp_(p, tau)

    def checkpoint() -> None:
        # optimizer_to_tensors's names and JSON, from the live moments (its state_dict() clones them)
        live = [i for i in range(len(params)) if optimizer.steps[i] > 0]
        opt_tensors = {
            f"optim.{i}.{key}": t[i]
            for i in live
            for key, t in (
                ("step", optimizer.steps),
                ("exp_avg", optimizer.exp_avg),
                ("exp_avg_sq", optimizer.exp_avg_sq),
            )
        }
        opt_state = {"param_groups": [dict(g) for g in optimizer.param_groups], "state": {str(i): {} for i in live}}
        tensors = {
            **{f"q.{k}": v for k, v in q.state_dict().items()},
            **{f"target.{k}": v for k, v in q_target.state_dict().items()},
            **opt_tensors,
        }
        state = {
            "timesteps": steps,
            "updates": updates,
            "vec_steps": vec_steps,
            "episodes": episodes,
            "optimizer": opt_state,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        _release_free_memory()  # a checkpoint comes with a full buffer: the peak resident size is reached here
        if hp.save_replay_buffer:
            buffer.save(replay_path)  # before the checkpoint: a checkpoint never points past its buffer
        run.checkpoint(tensors, state, rng)

    def evaluate_now() -> dict:
        from deeprl.evaluation import evaluate

        agent = DQNAgent(q, {"env_id": run.env_id, "env_kwargs": run.env_kwargs, "policy": policy})
        ev = evaluate(agent, n_eval_episodes=hp.n_eval_episodes or None, seed=run.seed)
        with open(eval_path, "a") as fh:
            fh.write(
                f"{steps},{ev['mean_reward']},{ev['std_reward']},{ev['result']},{ev['n_eval_episodes']},"
                f"{time.perf_counter() - t0:.1f}\n"
            )
        writer.add_scalar("eval/mean_reward", ev["mean_reward"], steps)
        writer.add_scalar("eval/result", ev["result"], steps)
        return ev

    def snapshot() -> tuple[dict, dict]:
        return {f"q.{k}": v for k, v in q.state_dict().items()}, policy

    drawn: tuple[np.ndarray, np.ndarray] | None = None  # the next train's first batch, drawn ahead

    def save(stopped: bool) -> None:
        nonlocal buffer, drawn
        if not stopped:  # the replay memory is saved: let it go before the model file's serialised copy is made
            buffer = None  # type: ignore[assignment]  # training is over: nothing reads the buffer again
            drawn = None
            _release_free_memory()
        run.save_model(
            snapshot()[0],
            policy,
            stopped=stopped,
            timesteps=steps,
            updates=updates,
            episodes=episodes,
            mean_return_last_100=float(np.mean(recent)) if recent else None,
        )

    def close() -> None:
        log.close()
        venv.close()

    loss = None
    # a run ends with the first step of all n_envs envs that reaches n_timesteps: that is the total it shows
    with run.loop(
        whole_batches(total, n_envs),
        "steps",
        initial=steps,
        checkpoint=checkpoint,
        save=save,
        close=close,
        checkpoint_every=hp.checkpoint_freq,
        checkpoint_seconds=hp.checkpoint_seconds,
    ) as loop:
        while steps < total:
            eps = epsilon(steps, hp)
            # before learning_starts SB3 acts uniformly at random, whatever epsilon says
            explore = rng.random(n_envs) < (eps if steps >= hp.learning_starts else 1.0)
            actions = rng.integers(0, policy["n_actions"], n_envs)
            if not explore.all():
                with torch.inference_mode():
                    greedy = q(torch.as_tensor(obs[~explore]))
                actions[~explore] = greedy.argmax(1).numpy()
            next_obs, rewards, terminated, truncated, info = venv.step(actions)
            done = terminated | truncated
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                for i in np.flatnonzero(done):
                    real_next[i] = info["final_obs"][i]
            buffer.add(obs, actions, rewards, real_next, terminated, truncated)
            obs = next_obs
            steps += n_envs
            vec_steps += 1
            ep_return += rewards
            ep_len += 1
            finished = (
                _finished_games(info)
                if atari
                else [(int(i), float(ep_return[i]), int(ep_len[i])) for i in np.flatnonzero(done)]
            )
            for _, ret, length in finished:
                episodes += 1
                recent.append(ret)
                log.write(f"{steps},{ret},{length},{time.perf_counter() - t0:.1f}\n")
                writer.add_scalar("rollout/episode_return", ret, steps)
            if finished:
                recent = recent[-100:]
                log.flush()
            ep_return[done], ep_len[done] = 0.0, 0

            # SB3 syncs the target in the step's _on_step, before the train() that ends the same rollout
            if vec_steps % target_every == 0:
                sync_target()
            # (a stacked-frame transition is whole once the step after it is stored: wait for two rows)
            if steps > hp.learning_starts and vec_steps % hp.train_freq == 0 and len(buffer) > n_envs:
                if isinstance(hp.learning_rate, Linear):
                    for g in optimizer.param_groups:
                        g["lr"] = learning_rate_at(hp.learning_rate, steps / total)
                for _ in range(grad_steps):
                    loss = update(buffer.sample(batch_size, rng, drawn))
                    drawn = None
                    updates += 1
                if updates == grad_steps:
                    _release_free_memory()  # what the first update's set-up freed
                # the next train's first batch is drawn now, over what the buffer will hold then (the same numbers
                # as drawing it then; the order of draws earlier versions made, so a seed trains as it did)
                ahead = hp.train_freq
                if steps + ahead * n_envs <= total:
                    drawn = buffer.draw(batch_size, rng, ahead)
            if loop.update(
                n_envs, steps, snapshot, epsilon=eps, mean_return=float(np.mean(recent)) if recent else None
            ):
                break
            if vec_steps % 1000 == 0:
                writer.add_scalar("train/epsilon", eps, steps)
                if loss is not None:
                    writer.add_scalar("train/loss", float(loss), steps)
            if next_eval is not None and steps >= next_eval:
                next_eval += eval_every
                if loop.evaluated(steps, evaluate_now()):
                    break
            loop.checkpoint_if_due(steps)


def _csv_upto(path: Path, header: str, steps: int) -> None:
    """Start `path` with `header`, or keep only its rows at or before `steps` (the first column)."""
    if not path.exists() or steps == 0:
        path.write_text(header + "\n")
        return
    lines = path.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln and int(float(ln.split(",", 1)[0])) <= steps]
    if len(keep) < len(lines):
        path.write_text("\n".join(keep) + "\n")


def _one_heap() -> None:
    """Let every thread allocate from the main heap: glibc would give torch's second thread an arena of its own,
    whose freed scratch stays resident beside the main heap's, next to a replay buffer. A no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc keeps what set-up freed: env probes, initialisation
    workspaces), so the resident size is what training holds. A no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _finished_games(info: dict) -> list[tuple[int, float, int]]:
    """(env index, score, length) of Atari games that ended this step.

    Atari training envs end an episode at each lost life and clip rewards; their RecordEpisodeStatistics
    (under those wrappers) reports the real game score when the game is over, which is what users compare.
    """
    final = info.get("final_info")
    if not isinstance(final, dict) or "episode" not in final:
        return []
    ep = final["episode"]
    return [(int(i), float(ep["r"][i]), int(ep["l"][i])) for i in np.flatnonzero(final["_episode"])]


# ---------------------------------------------------------------------------------------------------------------
# Loading a trained model


class DQNAgent:
    """Greedy on Q; `deterministic=False` is epsilon-greedy with the run's final epsilon (SB3's DQN.predict)."""

    def __init__(self, qnet: QNetwork, config: dict):
        self.q, self.config = qnet, config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.policy = config["policy"]
        self.eps = float(self.policy.get("eval_eps", 0.0))
        self._rng = np.random.default_rng(0)

    def reset(self) -> None:
        pass

    def act(self, obs: Any, deterministic: bool = True) -> int:
        import torch

        if not deterministic and self._rng.random() < self.eps:
            return int(self._rng.integers(self.policy["n_actions"]))
        x = torch.as_tensor(np.asarray(obs))[None]
        with torch.inference_mode():
            return int(self.q(x).argmax(1)[0])


def load_agent(config: dict, tensors: dict) -> DQNAgent:
    import torch

    policy = config.get("policy")
    if not isinstance(policy, dict) or policy.get("kind") not in ("cnn", "mlp"):
        raise UserError("The model's config.json has no DQN policy description; it is not a deeprl DQN model.")
    net = build_qnet(policy)
    weights = {k[2:]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith("q.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(f"The DQN weights do not fit the network in config.json ({first}).") from None
    net.eval()
    return DQNAgent(net, config)
