"""REINFORCE (Monte Carlo policy gradient), Unit 4, as the course's notebook writes it.

For every episode played with the current policy pi_theta:

    G_t = r_(t+1) + gamma * G_(t+1)                      (discounted return from each step on)
    G   = (G - mean(G)) / (std(G) + eps)                 (standardized per episode, eps = float32 eps)
    loss = -sum_t log pi_theta(a_t | s_t) * G_t          (one Adam step per episode)

With `episodes_per_update: N` (default 1, the course) N episodes are played with the same policy and their losses
summed into one Adam step: lower-variance steps, N times fewer of them. With `baseline: true` a value network V(s)
learns the raw returns by mean squared error and the policy uses G_t - V(s_t) (then standardized) instead; off by
default, as the course has none.

What makes it fast without changing the algorithm: the episode is played with the policy's weights read as numpy
arrays (views of the same torch tensors, so every Adam step shows up at once; deeprl.fast.numpy_mlp, the numpy
MLP that PPO's and A2C's collection use too) and actions sampled from its softmax
in numpy, which costs microseconds a step instead of a torch call; the log-probabilities that carry the gradient
are then computed in one batched torch forward over the whole episode. The gradient is the course's exactly: the
same policy, the same sampled actions, the same loss, one update per episode.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.fast.numpy_mlp import NumpyMLP
from deeprl.modelio import check_shape
from deeprl.settings import defaults

if TYPE_CHECKING:
    import gymnasium as gym
    from torch import nn

    from deeprl.train import Run


@dataclass
class Settings:
    """The course's REINFORCE (Unit 4's notebook); hyperparams/reinforce.yml holds its per-env values.

    :param n_training_episodes: episodes to train
    :param n_timesteps: optional cap on env steps; training stops at whichever comes first
    :param max_t: steps per episode at most (the course's max_t)
    :param gamma: discount factor
    :param learning_rate: the course's "lr"
    :param h_size: the course's hidden size: one hidden layer of h_size...
    :param hidden_sizes: ...unless a list is given (Pixelcopter: [64, 128], the course's fc1/fc2)
    :param activation: hidden activation
    :param standardize_returns: standardize each episode's returns (the course does)
    :param baseline: learned state-value baseline
    :param baseline_learning_rate: its Adam step size
    :param episodes_per_update: the course: 1. More sums that many episodes' losses into one Adam step
    :param checkpoint_every: episodes between checkpoints
    :param log_every: episodes between TensorBoard points
    """

    n_training_episodes: int = 1000
    n_timesteps: int | None = None
    max_t: int = 1000
    gamma: float = 1.0
    learning_rate: float = 1e-2
    h_size: int = 16
    hidden_sizes: Any = None
    activation: str = "relu"
    standardize_returns: bool = True
    baseline: bool = False
    baseline_learning_rate: float = 1e-3
    episodes_per_update: int = 1
    checkpoint_every: int = 1000
    log_every: int = 10


DEFAULTS = defaults(Settings)
TAGS = ["reinforce", "custom-implementation"]
EPS = float(np.finfo(np.float32).eps)


def hidden_sizes(hp: Settings) -> list[int]:
    sizes = hp.hidden_sizes
    sizes = [hp.h_size] if sizes in (None, [], "") else sizes
    if not isinstance(sizes, (list, tuple)) or not all(isinstance(s, int) and s > 0 for s in sizes):
        raise UserError(f"hidden_sizes must be a list of positive whole numbers, not {sizes!r}.")
    return [int(s) for s in sizes]


def build_policy(obs_dim: int, n_actions: int, hidden: list[int], activation: str) -> nn.Sequential:
    from deeprl.nets import ACTIVATIONS, mlp

    if activation not in ACTIVATIONS:
        raise UserError(f"activation must be one of {', '.join(ACTIVATIONS)}, not '{activation}'.")
    # PyTorch's default Linear init, as the course's nn.Linear layers (not CleanRL's orthogonal init)
    return mlp(obs_dim, hidden, n_actions, activation=activation, init=False)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma * G_(t+1), back to front (the course's deque loop)."""
    out = np.empty(len(rewards), dtype=np.float64)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def standardize(x: np.ndarray) -> np.ndarray:
    # torch's std (the course's) is the unbiased one; a one-step episode has none, and then has no signal either
    if x.size < 2:
        return np.zeros_like(x)
    return (x - x.mean()) / (x.std(ddof=1) + EPS)


def sample_action(logits: np.ndarray, u: float) -> int:
    """Inverse-CDF draw from softmax(logits) with the uniform u: the first action whose cumulative probability
    exceeds u."""
    if logits.shape[0] == 2:  # the common case (CartPole, Pixelcopter), in scalar arithmetic
        return int(u * (1.0 + math.exp(min(float(logits[1] - logits[0]), 700.0))) >= 1.0)
    p = np.exp(logits - logits.max())
    c = np.cumsum(p)
    return min(int(np.searchsorted(c, u * c[-1], side="right")), len(c) - 1)


def numpy_policy(net: nn.Sequential, activation: str) -> NumpyMLP:
    """The policy's forward on one observation in numpy, reading views of the torch weights (deeprl.fast)."""
    import torch

    return NumpyMLP.of_linears([m for m in net if isinstance(m, torch.nn.Linear)], activation)


def episode_seed(seed: int, episode: int) -> int:
    """Each episode's env seed, from the run seed and the episode index (so a resumed run replays the same)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def train(run: Run) -> None:
    import torch
    import torch.nn.functional as F

    from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
    from deeprl.nets import set_threads

    set_threads(1)  # tiny networks: one thread is fastest, the other core steps envs elsewhere
    if str(run.device).startswith("cuda"):
        from deeprl.log import note

        note(
            "REINFORCE trains on the CPU: its networks are a few thousand weights, played one step at a time, "
            "and a GPU would only add transfer time.",
            once_key="reinforce-cpu",
        )
    hp = run.settings(Settings)
    env = make_env(run.env_id, run.env_kwargs, training=True)
    obs_dim, n_actions = _check_spaces(env, run.env_id)
    hidden = hidden_sizes(hp)
    policy = build_policy(obs_dim, n_actions, hidden, hp.activation)
    optimizer = torch.optim.Adam(policy.parameters(), lr=hp.learning_rate)
    value = value_opt = None
    if hp.baseline:
        value = build_policy(obs_dim, 1, hidden, hp.activation)
        value_opt = torch.optim.Adam(value.parameters(), lr=hp.baseline_learning_rate)

    rng = np.random.default_rng(run.seed)
    n_episodes, max_t, gamma = hp.n_training_episodes, hp.max_t, hp.gamma
    step_cap = hp.n_timesteps
    episode, steps = 0, 0
    recent: deque = deque(maxlen=100)  # the course's scores_deque
    if run.resumed:
        tensors, state = run.resumed
        _load_net(policy, tensors, "policy")
        optimizer_from_tensors(optimizer, tensors, state["optimizer"], "optim.policy")
        if value is not None and value_opt is not None:  # (set together: baseline on)
            _load_net(value, tensors, "value")
            optimizer_from_tensors(value_opt, tensors, state["value_optimizer"], "optim.value")
        episode, steps = int(state["episodes"]), int(state["timesteps"])
        recent.extend(state.get("recent_returns", []))
        run.restore_rng(tensors, state, rng)

    actor = numpy_policy(policy, hp.activation)
    obs_buf = np.empty((max_t, obs_dim), dtype=np.float32)
    act_buf = np.empty(max_t, dtype=np.int64)
    rew_buf = np.empty(max_t, dtype=np.float64)
    writer = run.writer()
    log_every, ckpt_every = max(1, hp.log_every), max(1, hp.checkpoint_every)

    def checkpoint() -> None:
        tensors = {f"policy.{k}": v for k, v in policy.state_dict().items()}
        opt_t, opt_j = optimizer_to_tensors(optimizer, "optim.policy")
        tensors.update(opt_t)
        state = {"episodes": episode, "timesteps": steps, "optimizer": opt_j, "recent_returns": list(recent)}
        if value is not None and value_opt is not None:
            tensors.update({f"value.{k}": v for k, v in value.state_dict().items()})
            v_t, v_j = optimizer_to_tensors(value_opt, "optim.value")
            tensors.update(v_t)
            state["value_optimizer"] = v_j
        run.checkpoint(tensors, state, rng)

    def snapshot() -> tuple[dict, dict]:
        return (
            {f"policy.{k}": v for k, v in policy.state_dict().items()},
            {"obs_dim": obs_dim, "n_actions": n_actions, "hidden_sizes": hidden, "activation": hp.activation},
        )

    def save_model(stopped: bool) -> None:
        # a stopped run saves the weights of its last optimizer step, which its checkpoint holds too
        run.save_model(
            *snapshot(),
            stopped=stopped,
            episodes=episode,
            timesteps=steps,
            mean_return_last_100=float(np.mean(recent)) if recent else None,
        )

    def rewind() -> None:
        """A stopped run goes back to its last optimizer step: the weights are those of that step, so the counters
        and RNG go back to it too, and the episodes played since are played again on --resume, as an uninterrupted
        run would have played them."""
        nonlocal episode, steps
        episode, steps, kept, rng_state = at_update
        recent.clear()
        recent.extend(kept)
        rng.bit_generator.state = rng_state

    per_update = max(1, hp.episodes_per_update)
    pending = 0  # episodes whose gradients wait for the next optimizer step
    at_update = (episode, steps, list(recent), rng.bit_generator.state)  # where an interrupted run restarts
    with run.loop(
        n_episodes,
        "episodes",
        initial=episode,
        checkpoint=checkpoint,
        save=save_model,
        close=env.close,
        rewind=rewind,
        checkpoint_every=ckpt_every,
    ) as loop:
        while episode < n_episodes and (step_cap is None or steps < step_cap):
            obs, _ = env.reset(seed=episode_seed(run.seed, episode))
            uniforms = rng.random(max_t)
            T = 0
            while T < max_t:
                obs_buf[T] = obs
                a = sample_action(actor(obs_buf[T]), uniforms[T])
                obs, r, terminated, truncated, _ = env.step(a)
                act_buf[T], rew_buf[T] = a, r
                T += 1
                if terminated or truncated:
                    break
            if pending == 0:
                optimizer.zero_grad()
                if value_opt is not None:
                    value_opt.zero_grad()
            G = discounted_returns(rew_buf[:T], gamma)
            states = torch.from_numpy(obs_buf[:T])
            if value is not None:
                v = value(states).squeeze(-1)
                F.mse_loss(v, torch.from_numpy(G).float()).backward()
                G = G - v.detach().numpy()
            if hp.standardize_returns:
                G = standardize(G)
            log_probs = torch.log_softmax(policy(states), dim=-1)
            chosen = log_probs.gather(1, torch.from_numpy(act_buf[:T]).unsqueeze(1)).squeeze(1)
            loss = -(chosen * torch.from_numpy(G).float()).sum()
            loss.backward()
            pending += 1

            ep_return = float(rew_buf[:T].sum())
            recent.append(ep_return)
            episode += 1
            steps += T
            last = episode >= n_episodes or (step_cap is not None and steps >= step_cap)
            if pending == per_update or last:
                optimizer.step()
                if value_opt is not None:
                    value_opt.step()
                pending = 0
                at_update = (episode, steps, list(recent), rng.bit_generator.state)
                if not last:
                    loop.checkpoint_if_due(episode)
            mean_100 = float(np.mean(recent))
            if loop.update(1, episode, snapshot, mean_return=mean_100, steps=steps):
                break
            if episode % log_every == 0:
                writer.add_scalar("rollout/ep_rew_mean", mean_100, steps)
                writer.add_scalar("rollout/ep_rew", ep_return, steps)
                writer.add_scalar("rollout/ep_len", T, steps)
                writer.add_scalar("train/policy_loss", loss.item(), steps)
                writer.add_scalar("train/episodes", episode, steps)


def _check_spaces(env: gym.Env, env_id: str) -> tuple[int, int]:
    obs_space, act_space = env.observation_space, env.action_space
    if not hasattr(act_space, "n"):
        raise UserError(
            f"REINFORCE here uses a categorical policy; {env_id} has continuous actions ({act_space}). Try --algo ppo."
        )
    shape = getattr(obs_space, "shape", None)
    if shape is None or len(shape) != 1:
        raise UserError(f"REINFORCE here takes flat vector observations; {env_id} has {obs_space}.")
    return int(shape[0]), int(act_space.n)


def _load_net(net: nn.Module, tensors: dict, prefix: str) -> None:
    import torch

    sd = {}
    for k, ref in net.state_dict().items():
        name = f"{prefix}.{k}"
        if name not in tensors:
            raise UserError(f"The model file has no '{name}' tensor; it is not a REINFORCE model of this shape.")
        check_shape(name, tensors[name], tuple(ref.shape), "this REINFORCE network")
        sd[k] = torch.as_tensor(np.array(tensors[name], dtype=np.float32))
    net.load_state_dict(sd)


class ReinforceAgent:
    """argmax of the policy's logits when deterministic, a softmax sample otherwise (the course's policy.act)."""

    def __init__(self, net: nn.Sequential, env_id: str, env_kwargs: dict, config: dict, activation: str):
        self.net, self.env_id, self.env_kwargs, self.config = net, env_id, env_kwargs, config
        self._np = numpy_policy(net, activation)
        self._rng = np.random.default_rng(0)

    def reset(self) -> None:
        pass

    def act(self, obs: Any, deterministic: bool = True) -> int:
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        if deterministic:
            return int(np.argmax(self._np(x)))
        return sample_action(self._np(x), float(self._rng.random()))


def load_agent(config: dict, tensors: dict) -> ReinforceAgent:
    import torch

    torch.set_num_threads(1)
    pc = config.get("policy") or {}
    env = make_env(config["env_id"], config.get("env_kwargs") or {})
    try:
        obs_dim, n_actions = _check_spaces(env, config["env_id"])
    finally:
        env.close()
    hidden = pc.get("hidden_sizes")
    if not isinstance(hidden, list) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise UserError("config.json has no valid policy.hidden_sizes; the REINFORCE model folder is damaged.")
    activation = pc.get("activation", "relu")
    net = build_policy(obs_dim, n_actions, hidden, activation)
    _load_net(net, tensors, "policy")
    net.eval()
    return ReinforceAgent(net, config["env_id"], config.get("env_kwargs") or {}, config, activation)
