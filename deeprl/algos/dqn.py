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

import os
import time
from pathlib import Path

import numpy as np

from deeprl.buffers import FrameReplayBuffer, ReplayBuffer
from deeprl.checkpoint import optimizer_from_tensors
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.train import whole_batches

DEFAULTS = {
    "n_timesteps": 1_000_000,
    "policy": "auto",  # RL-Zoo's CnnPolicy / MlpPolicy; checked against the observations
    "env_wrapper": None,  # RL-Zoo's AtariWrapper: deeprl always preprocesses Atari that way
    "frame_stack": None,  # RL-Zoo's frame_stack: 4 for Atari (what the env stacks)
    "optimize_memory_usage": False,  # accepted: the buffer always stores each frame once
    "policy_kwargs": None,  # RL-Zoo's "dict(net_arch=[256, 256])" is read for net_arch and dueling
    "buffer_size": 1_000_000,
    "learning_rate": 1e-4,
    "batch_size": 32,
    "learning_starts": 100,
    "gamma": 0.99,
    "tau": 1.0,
    "train_freq": 4,
    "gradient_steps": 1,
    "target_update_interval": 10_000,
    "exploration_fraction": 0.1,
    "exploration_initial_eps": 1.0,
    "exploration_final_eps": 0.05,
    "max_grad_norm": 10.0,
    "n_envs": 1,
    "net_arch": None,  # MLP hidden layers for vector observations ([64, 64], SB3's default); Atari: Nature CNN
    "double_q": False,
    "dueling": False,
    "save_replay_buffer": False,
    "checkpoint_freq": 100_000,  # env steps between checkpoints
    "checkpoint_seconds": 0,  # also checkpoint after this many seconds of wall-clock (0: only by steps)
    "eval_freq": 0,  # env steps between evaluations by the course protocol, into evaluations.csv (0: none)
    "n_eval_episodes": 0,  # episodes per evaluation (0: the env's protocol, 10 for Atari)
    "torch_threads": "auto",  # pixels: every core for the Nature CNN's update (as torch's default); vectors: 1
}
TAGS = ["dqn", "deep-q-learning", "custom-implementation"]
REPLAY_FILE = "replay_buffer.safetensors"


# ---------------------------------------------------------------------------------------------------------------
# Hyperparameters as RL-Zoo writes them


def check_hyperparams(hp: dict, is_atari: bool) -> dict:
    """Validate RL-Zoo keys against what deeprl builds; return the effective settings."""
    hp = {**DEFAULTS, **hp}  # a run resumed from an older version lacks keys added since
    wrapper = hp.get("env_wrapper")
    wrappers = [wrapper] if isinstance(wrapper, (str, dict)) else list(wrapper or [])
    for w in wrappers:
        name = next(iter(w)) if isinstance(w, dict) else str(w)
        if not name.endswith("AtariWrapper"):
            raise UserError(f"env_wrapper {name} is not supported; deeprl builds the course's envs itself "
                            "(only AtariWrapper, which it applies to Atari games, may be named).")
        if not is_atari:
            raise UserError("env_wrapper AtariWrapper is for Atari games; remove it for this env.")
    if hp.get("frame_stack") not in (None, 4):
        raise UserError(f"frame_stack {hp['frame_stack']} is not supported; Atari games are stacked 4 frames "
                        "deep (remove frame_stack or set it to 4).")
    if hp.get("frame_stack") == 4 and not is_atari:
        raise UserError("frame_stack is for Atari games here; remove it for this env.")
    policy = hp.get("policy") or "auto"
    if policy not in ("auto", "CnnPolicy", "MlpPolicy"):
        raise UserError(f"policy {policy} is not known; use CnnPolicy (Atari) or MlpPolicy (vector observations).")
    if policy == "MlpPolicy" and is_atari:
        raise UserError("MlpPolicy cannot read Atari frames; use policy: CnnPolicy.")
    if policy == "CnnPolicy" and not is_atari:
        raise UserError("CnnPolicy needs image observations; use policy: MlpPolicy for this env.")
    kw = hp.get("policy_kwargs")
    if isinstance(kw, str):
        from deeprl.policies import parse_call_kwargs

        kw = parse_call_kwargs(kw, "policy_kwargs")
    if kw is not None and not isinstance(kw, dict):
        raise UserError(f"policy_kwargs must be a mapping such as dict(net_arch=[256, 256]), not {kw!r}.")
    for key, value in (kw or {}).items():
        if key == "net_arch":
            hp["net_arch"] = value
        elif key == "dueling":
            hp["dueling"] = bool(value)
        elif key in ("activation_fn", "activation") and str(value).lower() != "relu":
            raise UserError("deeprl's DQN uses ReLU (SB3's default); remove activation_fn from policy_kwargs.")
        elif key not in ("activation_fn", "activation"):
            raise UserError(f"policy_kwargs {key} is not supported by deeprl's DQN (net_arch and dueling are).")
    arch = hp.get("net_arch")
    arch = [64, 64] if arch is None else arch
    if not (isinstance(arch, list) and all(isinstance(h, int) and h > 0 for h in arch)):
        raise UserError(f"net_arch must be a list of positive layer sizes such as [256, 256], not {arch!r}.")
    hp["net_arch"] = arch
    tf = hp["train_freq"]
    if isinstance(tf, (list, tuple)):
        if len(tf) != 2 or str(tf[1]) != "step":
            raise UserError(f"train_freq {list(tf)} is not supported; give a number of steps (e.g. 4).")
        tf = tf[0]
    hp["train_freq"] = int(tf)
    if hp["torch_threads"] in (None, "auto"):
        # the batch-32 convolutions of the update run 1.8x faster on 2 threads; a 64-unit MLP's run slower
        hp["torch_threads"] = len(os.sched_getaffinity(0)) if is_atari else 1
    for key in ("n_timesteps", "buffer_size", "batch_size", "learning_starts", "target_update_interval",
                "train_freq", "n_envs", "checkpoint_freq", "torch_threads", "checkpoint_seconds", "eval_freq",
                "n_eval_episodes"):
        hp[key] = int(float(hp[key]))
    for key in ("learning_rate", "gamma", "tau", "exploration_fraction", "exploration_initial_eps",
                "exploration_final_eps", "max_grad_norm"):
        try:
            hp[key] = float(str(hp[key]).removeprefix("lin_")) if key != "learning_rate" else hp[key]
        except ValueError:
            raise UserError(f"{key} must be a number, not {hp[key]!r}.") from None
    hp["learning_rate"] = _constant_lr(hp["learning_rate"])
    hp["gradient_steps"] = int(float(hp["gradient_steps"]))
    if hp["gradient_steps"] == 0 or hp["gradient_steps"] < -1:
        raise UserError("gradient_steps must be a positive number (or -1: as many as env steps collected).")
    for key in ("n_timesteps", "buffer_size", "batch_size", "train_freq", "n_envs", "target_update_interval"):
        if hp[key] < 1:
            raise UserError(f"{key} must be at least 1.")
    if not 0 < hp["exploration_fraction"] <= 1:
        raise UserError("exploration_fraction must be in (0, 1].")
    if hp["buffer_size"] < hp["n_envs"]:
        raise UserError("buffer_size must be at least n_envs.")
    return hp


def _constant_lr(value):
    """A number, or RL-Zoo's 'lin_X' schedule (annealed from X to 0 over the run)."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            float(value[4:])
        except ValueError:
            raise UserError(f"learning_rate {value!r} is not a number or lin_<number>.") from None
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"learning_rate must be a number or lin_<number>, not {value!r}.") from None


def learning_rate_at(lr, progress: float) -> float:
    if isinstance(lr, str):
        return float(lr[4:]) * (1.0 - progress)
    return float(lr)


def epsilon(step: int, hp: dict) -> float:
    """SB3's linear schedule: initial -> final over the first exploration_fraction of n_timesteps, then final."""
    progress = step / hp["n_timesteps"]
    start, end, frac = hp["exploration_initial_eps"], hp["exploration_final_eps"], hp["exploration_fraction"]
    if progress > frac:
        return end
    return start + progress * (end - start) / frac


# ---------------------------------------------------------------------------------------------------------------
# Network


def build_qnet(policy: dict):
    """Q-network from a policy config: {"kind": "cnn"|"mlp", "obs_shape", "n_actions", "net_arch", "dueling"}."""
    import torch
    from torch import nn

    from deeprl.nets import NatureCNN, mlp

    class QNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            n = policy["n_actions"]
            if policy["kind"] == "cnn":
                self.body = NatureCNN(policy["obs_shape"][0], frame_hw=tuple(policy["obs_shape"][1:]))
                width = self.body.features
            else:
                arch = list(policy["net_arch"])
                self.body = mlp(int(np.prod(policy["obs_shape"])), arch, None, activation="relu", init=False)
                width = arch[-1] if arch else int(np.prod(policy["obs_shape"]))
            self.dueling = bool(policy.get("dueling"))
            self.q = nn.Linear(width, n)
            if self.dueling:
                self.v = nn.Linear(width, 1)

        def forward(self, x):
            if policy["kind"] == "mlp":
                x = x.reshape(x.shape[0], -1).float()
            h = self.body(x)
            if self.dueling:  # Wang et al. 2016: Q = V + A - mean(A)
                a = self.q(h)
                return self.v(h) + a - a.mean(1, keepdim=True)
            return self.q(h)

    net = QNetwork()
    if policy["kind"] == "cnn":
        # SB3's (and CleanRL's) DQN keep PyTorch's default initialisation of the Nature CNN; the shared NatureCNN
        # starts orthogonal (the PPO recipe)
        for m in net.body.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
        net = net.to(memory_format=torch.channels_last)  # oneDNN convolutions run faster on NHWC on CPU
    return net


# ---------------------------------------------------------------------------------------------------------------
# Training


def train(run) -> None:
    import torch
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
    policy = {"kind": "cnn" if pixels else "mlp", "obs_shape": list(obs_space.shape), "n_actions": int(act_space.n),
              "net_arch": list(hp["net_arch"]) if not pixels else [], "dueling": bool(hp["dueling"]),
              "eval_eps": hp["exploration_final_eps"]}
    set_threads(max(hp["torch_threads"], 1))
    flush_denormals()
    if pixels:  # beside a replay memory of frames every MB counts (before torch's threads and TensorBoard's start)
        _one_heap()
    n_envs, total = hp["n_envs"], hp["n_timesteps"]

    q = build_qnet(policy)
    q_target = build_qnet(policy)
    q_target.load_state_dict(q.state_dict())
    q_target.requires_grad_(False)
    lr0 = learning_rate_at(hp["learning_rate"], 0.0)
    # deeprl.nets.Adam: torch.optim.Adam's arithmetic and state format without importing torch._dynamo (70 MB of
    # resident memory, a tenth of a 100k Atari buffer)
    params = list(q.parameters())
    optimizer = Adam(params, lr=lr0)
    if pixels:
        buffer = FrameReplayBuffer(hp["buffer_size"], n_envs, obs_space.shape)
    else:
        buffer = ReplayBuffer(hp["buffer_size"], n_envs, obs_space.shape, np.float32)
    rng = np.random.default_rng(run.seed)
    steps, updates, vec_steps, episodes = 0, 0, 0, 0
    replay_path = Path(run.run_dir) / REPLAY_FILE
    seconds0 = 0.0  # training wall-clock before this process (a resumed run's curve continues its time axis)
    if run.resumed:
        tensors, state = run.resumed
        q.load_state_dict({k[2:]: torch.from_numpy(np.array(v)) for k, v in tensors.items() if k.startswith("q.")})
        q_target.load_state_dict({k[7:]: torch.from_numpy(np.array(v)) for k, v in tensors.items()
                                  if k.startswith("target.")})
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        steps, updates, vec_steps, episodes = (state[k] for k in ("timesteps", "updates", "vec_steps", "episodes"))
        seconds0 = float(state.get("seconds", 0.0))
        run.restore_rng(tensors, state, rng)
        if hp["save_replay_buffer"] and replay_path.exists():
            buffer.load(replay_path)
        # the checkpoint's arrays (weights, target, Adam moments: 5 copies of the network) are copied in by now
        run.resumed = tensors = state = None

    venv = make_vec_env(run.env_id, n_envs, seed=run.seed + steps, env_kwargs=run.env_kwargs, training=True)
    obs, _ = venv.reset(seed=run.seed + steps)
    target_every = max(hp["target_update_interval"] // n_envs, 1)
    gamma, batch_size, tau = hp["gamma"], hp["batch_size"], hp["tau"]
    grad_steps = hp["gradient_steps"] if hp["gradient_steps"] > 0 else hp["train_freq"] * n_envs
    ep_return, ep_len = np.zeros(n_envs), np.zeros(n_envs, dtype=np.int64)
    recent: list[float] = []
    writer = run.writer()
    log_path, eval_path = Path(run.run_dir) / "episodes.csv", Path(run.run_dir) / "evaluations.csv"
    # rows written after the checkpoint a run resumes from are written again as it replays those steps
    _csv_upto(log_path, "timesteps,return,length,seconds", steps)
    log = open(log_path, "a")
    next_ckpt = steps + hp["checkpoint_freq"]
    eval_every = hp["eval_freq"]
    if eval_every:
        _csv_upto(eval_path, "timesteps,mean_reward,std_reward,result,n_episodes,seconds", steps)
    next_eval = (steps // eval_every + 1) * eval_every if eval_every else None
    # a run ends with the first step of all n_envs envs that reaches n_timesteps: that is the total it shows
    progress = run.progress(whole_batches(total, n_envs), "steps", initial=steps)
    _release_free_memory()
    t0 = time.perf_counter() - seconds0
    last_ckpt = time.perf_counter()

    def update(batch):
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
            if hp["double_q"]:
                best = q(o2).argmax(1, keepdim=True)
                q_next = q_next.gather(1, best).squeeze(1)
            else:
                q_next = q_next.max(1).values
            y = r + gamma * not_done * q_next
        q_sa = q(o).gather(1, a[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q_sa, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(params, hp["max_grad_norm"])
        optimizer.step()
        return loss.detach()

    def sync_target():
        with torch.no_grad():
            if tau >= 1.0:
                for p_t, p in zip(q_target.parameters(), q.parameters()):
                    p_t.copy_(p)
            else:
                for p_t, p in zip(q_target.parameters(), q.parameters()):
                    p_t.lerp_(p, tau)

    def checkpoint():
        # optimizer_to_tensors's names and JSON, from the live moments (its state_dict() clones them)
        live = [i for i in range(len(params)) if optimizer.steps[i] > 0]
        opt_tensors = {f"optim.{i}.{key}": t[i] for i in live for key, t in
                       (("step", optimizer.steps), ("exp_avg", optimizer.exp_avg), ("exp_avg_sq", optimizer.exp_avg_sq))}
        opt_state = {"param_groups": [dict(g) for g in optimizer.param_groups], "state": {str(i): {} for i in live}}
        tensors = {**{f"q.{k}": v for k, v in q.state_dict().items()},
                   **{f"target.{k}": v for k, v in q_target.state_dict().items()}, **opt_tensors}
        state = {"timesteps": steps, "updates": updates, "vec_steps": vec_steps, "episodes": episodes,
                 "optimizer": opt_state, "seconds": round(time.perf_counter() - t0, 3)}
        _release_free_memory()  # a checkpoint comes with a full buffer: the peak resident size is reached here
        if hp["save_replay_buffer"]:
            buffer.save(replay_path)  # before the checkpoint: a checkpoint never points past its buffer
        run.checkpoint(tensors, state, rng)

    def evaluate_now():
        from deeprl.evaluation import evaluate

        agent = DQNAgent(q, {"env_id": run.env_id, "env_kwargs": run.env_kwargs, "policy": policy})
        ev = evaluate(agent, n_eval_episodes=hp["n_eval_episodes"] or None, seed=run.seed)
        with open(eval_path, "a") as fh:
            fh.write(f"{steps},{ev['mean_reward']},{ev['std_reward']},{ev['result']},{ev['n_eval_episodes']},"
                     f"{time.perf_counter() - t0:.1f}\n")
        writer.add_scalar("eval/mean_reward", ev["mean_reward"], steps)
        writer.add_scalar("eval/result", ev["result"], steps)

    loss = drawn = None
    try:
        while steps < total:
            eps = epsilon(steps, hp)
            # before learning_starts SB3 acts uniformly at random, whatever epsilon says
            explore = rng.random(n_envs) < (eps if steps >= hp["learning_starts"] else 1.0)
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
            finished = (_finished_games(info) if atari else
                        [(int(i), float(ep_return[i]), int(ep_len[i])) for i in np.flatnonzero(done)])
            for i, ret, length in finished:
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
            if steps > hp["learning_starts"] and vec_steps % hp["train_freq"] == 0 and len(buffer) > n_envs:
                if isinstance(hp["learning_rate"], str):
                    for g in optimizer.param_groups:
                        g["lr"] = learning_rate_at(hp["learning_rate"], steps / total)
                for _ in range(grad_steps):
                    loss = update(buffer.sample(batch_size, rng, drawn))
                    drawn = None
                    updates += 1
                if updates == grad_steps:
                    _release_free_memory()  # what the first update's set-up freed
                # the next train's first batch is drawn now, over what the buffer will hold then (the same numbers
                # as drawing it then; the order of draws earlier versions made, so a seed trains as it did)
                ahead = hp["train_freq"]
                if steps + ahead * n_envs <= total:
                    drawn = buffer.draw(batch_size, rng, ahead)
            progress.update(n_envs, epsilon=eps, mean_return=float(np.mean(recent)) if recent else None)
            if run.callbacks:
                run.after_update(steps, lambda: ({f"q.{k}": v for k, v in q.state_dict().items()}, policy))
            if vec_steps % 1000 == 0:
                writer.add_scalar("train/epsilon", eps, steps)
                if loss is not None:
                    writer.add_scalar("train/loss", float(loss), steps)
            if next_eval is not None and steps >= next_eval:
                evaluate_now()
                next_eval += eval_every
            if steps >= next_ckpt or (hp["checkpoint_seconds"]
                                      and time.perf_counter() - last_ckpt >= hp["checkpoint_seconds"]):
                checkpoint()
                next_ckpt = steps + hp["checkpoint_freq"]
                last_ckpt = time.perf_counter()
    except KeyboardInterrupt:
        checkpoint()
        # a stopped run is a model too: evaluate and push take it as it is
        run.save_model({f"q.{k}": v for k, v in q.state_dict().items()}, policy, stopped=True, timesteps=steps,
                       updates=updates, episodes=episodes,
                       mean_return_last_100=float(np.mean(recent)) if recent else None)
        progress.close()
        log.close()
        venv.close()
        raise
    progress.close()
    log.close()
    venv.close()
    checkpoint()
    # the replay memory is saved: let it go before the model file's serialised copy is made beside it
    buffer = drawn = None
    _release_free_memory()
    run.save_model({f"q.{k}": v for k, v in q.state_dict().items()}, policy, timesteps=steps, updates=updates,
                   episodes=episodes, mean_return_last_100=float(np.mean(recent)) if recent else None)


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

    def __init__(self, qnet, config: dict):
        self.q, self.config = qnet, config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.policy = config["policy"]
        self.eps = float(self.policy.get("eval_eps", 0.0))
        self._rng = np.random.default_rng(0)

    def reset(self):
        pass

    def act(self, obs, deterministic: bool = True):
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
