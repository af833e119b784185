"""Decision Transformer (Bonus 3; Chen et al. 2021): offline RL as sequence modelling.

A GPT-2 reads the last K steps of an episode as tokens (return-to-go R_t, state s_t, action a_t) and predicts
each action from the tokens before it; nothing is bootstrapped and no env is stepped while it learns:

    loss = mean over unpadded steps of ||a_pred(R_<=t, s_<=t, a_<t) - a_t||^2            (MSE, tanh head)
    R_t  = (r_t + r_t+1 + ... + r_T) / scale                                             (undiscounted)

At play time the agent asks for a return (`target_return`) and lowers it by each reward it receives, so the
same network acts like a better or worse player depending on what it is asked for.

As the course (`huggingface/blog` train-decision-transformers.md) this uses Hugging Face `transformers`'
DecisionTransformerModel (hidden 128, 3 layers, 1 head, relu, dropout 0.1, tanh actions) and its collator: context
K=20, return-to-go divided by scale=1000, states normalized by the dataset's mean and std, sub-sequences drawn
from trajectories in proportion to their length, padded on the left (actions with -10) under an attention mask,
timesteps clipped at max_ep_len-1; AdamW lr 1e-4, weight decay 1e-4, 10 % linear warmup then linear decay
(HF Trainer's default schedule), grad norm 0.25, batch 64. `n_timesteps` counts gradient steps. Continuous (Box)
actions only, as the course: the tanh head predicts each action in [-1, 1], mapped onto the env's bounds.

The data is `dataset: DIR`, a trajectory dataset (deeprl.datasets: `deeprl dataset make`), or a Hub dataset id
in the course's columns with `dataset_config` and `dataset_split` (loaded with `datasets.load_dataset`).
`transformers` is imported inside the functions: `import deeprl` and the other commands never load it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from deeprl import datasets
from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.envs import make_env
from deeprl.errors import UserError
from deeprl.log import note
from deeprl.nets import one_thread, set_threads
from deeprl.settings import defaults

if TYPE_CHECKING:
    from torch import nn

    from deeprl.train import Run


@dataclass
class Settings:
    """The course's Decision Transformer (blog and Colab); hyperparams/dt.yml per env.

    :param dataset: a trajectory dataset folder (deeprl dataset make) or a Hub dataset id in the course's columns
    :param dataset_config: the Hub dataset's configuration (halfcheetah-medium-v2, ...); none for a folder
    :param dataset_split: the Hub dataset's split
    :param n_timesteps: gradient steps (the course: 40 epochs of its 1,000 trajectories in batches of 64, 640 steps)
    :param batch_size: sub-sequences per gradient step
    :param context_length: K, the steps the transformer sees (3K tokens)
    :param max_ep_len: timesteps are clipped below this (the collator's cutoff)
    :param scale: returns-to-go are divided by this
    :param target_return: the return the agent asks for when it plays (none: the dataset's best episode return)
    :param hidden_size: embedding width
    :param n_layer: transformer blocks
    :param n_head: attention heads
    :param dropout: GPT-2's residual, embedding and attention dropout
    :param learning_rate: AdamW's peak step size
    :param weight_decay: AdamW's decoupled weight decay
    :param warmup_ratio: share of the steps the learning rate rises over before it decays linearly to 0
    :param max_grad_norm: gradients are clipped to this norm
    :param torch_threads: torch threads (0: torch's default)
    """

    dataset: str | None = None
    dataset_config: str | None = None
    dataset_split: str = "train"
    n_timesteps: int = 10_000
    batch_size: int = 64
    context_length: int = 20
    max_ep_len: int = 1000
    scale: float = 1000.0
    target_return: float | None = None
    hidden_size: int = 128
    n_layer: int = 3
    n_head: int = 1
    dropout: float = 0.1
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_ratio: float = 0.1
    max_grad_norm: float = 0.25
    torch_threads: int = 1


DEFAULTS = defaults(Settings)
DISPLAY_NAME = "Decision Transformer"  # on model cards
TAGS = ["decision-transformer", "offline-rl", "transformers"]
PAD_ACTION = -10.0  # the course's collator pads actions with -10 (masked out anyway)


# --------------------------------------------------------------------------------------------------------------
# The data: trajectories as the collator slices them


@dataclass
class Sequences:
    """Per trajectory: normalized states, actions in [-1, 1] and scaled returns-to-go, all float32."""

    states: list[np.ndarray]
    actions: list[np.ndarray]
    returns_to_go: list[np.ndarray]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.states])


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    """R_t = r_t + r_t+1 + ... + r_T (the course's discount_cumsum with gamma 1)."""
    return np.cumsum(np.asarray(rewards, np.float64)[::-1])[::-1].copy()


def state_stats(trajectories: Sequence[datasets.Trajectory]) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's state mean and std (+1e-6, as the course's collator)."""
    states = np.concatenate([t.observations for t in trajectories]).astype(np.float64)
    return states.mean(0).astype(np.float32), (states.std(0) + 1e-6).astype(np.float32)


def to_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Env actions -> [-1, 1] (the tanh head's range), clipped to the bounds the env would clip them to."""
    return (2.0 * (np.clip(actions, low, high) - low) / (high - low) - 1.0).astype(np.float32)


def from_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (low + (np.asarray(actions, np.float32) + 1.0) * 0.5 * (high - low)).astype(np.float32)


def prepare(
    trajectories: Sequence[datasets.Trajectory],
    state_mean: np.ndarray,
    state_std: np.ndarray,
    scale: float,
    low: np.ndarray,
    high: np.ndarray,
) -> Sequences:
    return Sequences(
        states=[((t.observations - state_mean) / state_std).astype(np.float32) for t in trajectories],
        actions=[to_unit(t.actions.reshape(len(t), -1), low, high) for t in trajectories],
        returns_to_go=[(returns_to_go(t.rewards) / scale).astype(np.float32) for t in trajectories],
    )


def sample(data: Sequences, rng: np.random.Generator, batch_size: int) -> list[tuple[int, int]]:
    """(trajectory, start) pairs: trajectories in proportion to their length, a uniform start in each (course)."""
    lengths = data.lengths
    picks = rng.choice(len(lengths), size=batch_size, p=lengths / lengths.sum())
    starts = rng.integers(0, lengths[picks])
    return [(int(i), int(s)) for i, s in zip(picks, starts, strict=True)]


def collate(
    data: Sequences, picks: Sequence[tuple[int, int]], context_length: int, max_ep_len: int
) -> dict[str, torch.Tensor]:
    """The course's collator: for each (trajectory, start) up to K steps from `start`, padded on the left to K,
    with the attention mask marking the real steps and timesteps clipped at max_ep_len - 1."""
    k, n = context_length, len(picks)
    state_dim, act_dim = data.states[0].shape[1], data.actions[0].shape[1]
    states = np.zeros((n, k, state_dim), np.float32)
    actions = np.full((n, k, act_dim), PAD_ACTION, np.float32)
    rtg = np.zeros((n, k, 1), np.float32)
    timesteps = np.zeros((n, k), np.int64)
    mask = np.zeros((n, k), np.int64)
    for row, (i, start) in enumerate(picks):
        stop = min(start + k, len(data.states[i]))
        pad = k - (stop - start)
        states[row, pad:] = data.states[i][start:stop]
        actions[row, pad:] = data.actions[i][start:stop]
        rtg[row, pad:, 0] = data.returns_to_go[i][start:stop]
        timesteps[row, pad:] = np.minimum(np.arange(start, stop), max_ep_len - 1)
        mask[row, pad:] = 1
    return {
        "states": torch.from_numpy(states),
        "actions": torch.from_numpy(actions),
        "returns_to_go": torch.from_numpy(rtg),
        "timesteps": torch.from_numpy(timesteps),
        "attention_mask": torch.from_numpy(mask),
    }


def load_trajectories(hp: Settings, env_id: str, obs_space: gym.Space, action_space: gym.Space) -> list:
    """The episodes `dataset` names, checked against the env the run trains on."""
    if not hp.dataset:
        raise UserError(
            f"A Decision Transformer learns from a dataset: give --hyperparams dataset:DIR, trajectories of {env_id} "
            "made with 'deeprl dataset make', or a Hub dataset id with dataset_config:NAME."
        )
    if Path(hp.dataset).is_dir():
        dataset = datasets.read(hp.dataset)
        trajectories = dataset.trajectories
        where = f"{hp.dataset} ({dataset.env_id})"
        if dataset.env_id != env_id:
            note(f"the dataset {hp.dataset} was recorded on {dataset.env_id}; training for {env_id} all the same.")
    elif datasets_repo_id(hp.dataset):
        trajectories, where = _hub_trajectories(hp), f"{hp.dataset} {hp.dataset_config or ''}".strip()
    else:
        raise UserError(f"The dataset {hp.dataset} is neither a folder nor a Hub dataset id (NAMESPACE/NAME).")
    if not trajectories:
        raise UserError(f"The dataset {where} holds no episodes.")
    spaces = datasets.space_info(obs_space, action_space)
    obs_dim, act_dim = spaces["observation_shape"][0], spaces["action_space"]["shape"][0]
    first = trajectories[0]
    if first.observations.shape[1] != obs_dim or first.actions.ndim != 2 or first.actions.shape[1] != act_dim:
        raise UserError(
            f"The dataset {where} holds {first.observations.shape[1]}-number observations and actions of shape "
            f"{first.actions.shape[1:]}, which do not match {env_id} ({obs_dim} and ({act_dim},)); use a dataset "
            f"of {env_id}."
        )
    return trajectories


def datasets_repo_id(name: str) -> bool:
    from deeprl.agent import REPO_ID

    return bool(REPO_ID.match(name)) and not name.startswith((".", "/"))


def _hub_trajectories(hp: Settings) -> list:
    """A Hub dataset in the course's columns (edbeeching/decision_transformer_gym_replay): `datasets` reads its
    Parquet files; nothing in it is executed or unpickled."""
    from datasets import load_dataset

    try:
        rows = load_dataset(hp.dataset, hp.dataset_config, split=hp.dataset_split)
        return datasets.trajectories(rows)
    except Exception as exc:  # offline, unknown id or config, other columns: what datasets said, in one sentence
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"Cannot load the Hub dataset {hp.dataset} ({hp.dataset_config}): {msg}") from None


def continuous_bounds(env_id: str, action_space: gym.Space) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(action_space, gym.spaces.Box):
        raise UserError(
            f"The Decision Transformer predicts continuous (Box) actions with a tanh head, as the course's does; "
            f"{env_id} has {type(action_space).__name__} actions (train it with BC, PPO or DQN instead)."
        )
    low, high = action_space.low.reshape(-1), action_space.high.reshape(-1)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise UserError(f"{env_id}'s actions are unbounded; a tanh head needs bounded ones.")
    return low.astype(np.float32), high.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# The model


def build_model(
    state_dim: int, act_dim: int, hidden_size: int, n_layer: int, n_head: int, dropout: float = 0.1, **dims: Any
) -> nn.Module:
    """transformers' DecisionTransformerModel with the course's configuration (its defaults: relu, tanh actions,
    max_ep_len 4096 timestep embeddings). `dims` are other sizes a saved model's weights give (n_inner...)."""
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    config = DecisionTransformerConfig(
        state_dim=state_dim,
        act_dim=act_dim,
        hidden_size=hidden_size,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=None,  # GPT-2's token ids mean nothing here (no vocabulary), and warn when left set
        eos_token_id=None,
        **dims,
    )
    return DecisionTransformerModel(config)


def dt_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MSE between predicted and dataset actions on the unpadded steps (the course's TrainableDT)."""
    out = model(**batch, return_dict=True)
    real = batch["attention_mask"].reshape(-1) > 0
    act_dim = out.action_preds.shape[-1]
    return (out.action_preds.reshape(-1, act_dim)[real] - batch["actions"].reshape(-1, act_dim)[real]).pow(2).mean()


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"dt.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def train(run: Run) -> None:
    from transformers import get_linear_schedule_with_warmup

    hp = run.settings(Settings)
    for key in ("n_timesteps", "batch_size", "context_length", "max_ep_len", "hidden_size", "n_layer", "n_head"):
        if getattr(hp, key) <= 0:
            raise UserError(f"{key} must be a positive integer, not {getattr(hp, key)!r}.")
    if hp.hidden_size % hp.n_head:
        raise UserError(f"hidden_size ({hp.hidden_size}) must be a multiple of n_head ({hp.n_head}).")
    if hp.scale <= 0 or not 0 <= hp.warmup_ratio <= 1 or not 0 <= hp.dropout < 1:
        raise UserError("scale must be positive, warmup_ratio within 0..1 and dropout within 0..1 (not 1).")
    if hp.torch_threads:
        set_threads(hp.torch_threads)
    env = make_env(run.env_id, run.env_kwargs)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    low, high = continuous_bounds(run.env_id, action_space)
    trajectories = load_trajectories(hp, run.env_id, obs_space, action_space)
    state_mean, state_std = state_stats(trajectories)
    data = prepare(trajectories, state_mean, state_std, hp.scale, low, high)
    returns = np.array([t.episode_return for t in trajectories])
    target_return = float(returns.max()) if hp.target_return is None else float(hp.target_return)

    dims = {"hidden_size": hp.hidden_size, "n_layer": hp.n_layer, "n_head": hp.n_head}
    # timestep embeddings: the course's 4096, or more where the collator's cutoff is higher
    size = {"max_ep_len": max(4096, hp.max_ep_len)}
    model = build_model(len(state_mean), len(low), dropout=hp.dropout, **dims, **size).to(run.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=hp.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * hp.n_timesteps), hp.n_timesteps)
    rng = np.random.default_rng(run.seed)
    step = 0
    if run.resumed:
        tensors, state = run.resumed
        model.load_state_dict({k[3:]: torch.as_tensor(v) for k, v in tensors.items() if k.startswith("dt.")})
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None]})
        run.restore_rng(tensors, state, rng)
        step = state["timesteps"]
    policy_config = {
        "state_dim": len(state_mean),
        **dims,
        "context_length": hp.context_length,
        "max_ep_len": hp.max_ep_len,
        "scale": hp.scale,
        "target_return": target_return,
        "state_mean": state_mean.tolist(),
        "state_std": state_std.tolist(),
        "action_low": low.tolist(),
        "action_high": high.tolist(),
    }
    writer = run.writer()
    loss_value = float("nan")

    def checkpoint() -> None:
        opt_tensors, opt_state = optimizer_to_tensors(optimizer)
        sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
        run.checkpoint(
            {**model_tensors(model), **opt_tensors},
            {"timesteps": step, "optimizer": opt_state, "scheduler": sched},
            rng,
        )

    def save(stopped: bool) -> None:
        run.save_model(
            model_tensors(model),
            policy_config,
            stopped=stopped,
            timesteps=step,
            loss=round(loss_value, 6),
            dataset=hp.dataset,
            dataset_episodes=len(trajectories),
            dataset_steps=int(data.lengths.sum()),
            dataset_mean_return=float(returns.mean()),
            dataset_best_return=float(returns.max()),
        )

    model.train()
    with run.loop(
        hp.n_timesteps, "steps", initial=step, checkpoint=checkpoint, save=save, checkpoint_every=1000
    ) as loop:
        while step < hp.n_timesteps:
            batch = collate(data, sample(data, rng, hp.batch_size), hp.context_length, hp.max_ep_len)
            loss = dt_loss(model, {k: v.to(run.device) for k, v in batch.items()})
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            if step % 50 == 0 or step == hp.n_timesteps:
                writer.add_scalars(
                    [("train/loss", loss_value), ("train/learning_rate", scheduler.get_last_lr()[0])], step
                )
            if loop.update(1, step, lambda: (model_tensors(model), policy_config), loss=loss_value):
                break
            loop.checkpoint_if_due(step)


# --------------------------------------------------------------------------------------------------------------
# Playing: the episode's context, kept between calls


class DecisionTransformerAgent:
    """Plays a saved Decision Transformer one observation at a time. It keeps the episode's last K states,
    actions, returns-to-go and timesteps; `reset()` at each episode start (the evaluation protocol calls it, as for
    the recurrent APPO agent) asks for `target_return` again, and `observe(reward)` after each step lowers the
    return still asked for by that reward. Without `observe` the return asked for stays at the target."""

    def __init__(self, model: nn.Module, config: dict):
        p = config["policy"]
        self.model, self.config = model.eval(), config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.state_mean = np.asarray(p["state_mean"], np.float32)
        self.state_std = np.asarray(p["state_std"], np.float32)
        self.low, self.high = np.asarray(p["action_low"], np.float32), np.asarray(p["action_high"], np.float32)
        self.scale, self.context = float(p["scale"]), int(p["context_length"])
        self.max_ep_len = int(p["max_ep_len"])
        self.target_return = float(p["target_return"])
        self.reset()

    def reset(self, target_return: float | None = None) -> None:
        if target_return is not None:
            self.target_return = float(target_return)
        k = self.context
        self.states: deque = deque(maxlen=k)
        self.actions: deque = deque(maxlen=k)
        self.returns_to_go: deque = deque(maxlen=k)
        self.timesteps: deque = deque(maxlen=k)
        self.t, self.reward = 0, 0.0

    def observe(self, reward: float) -> None:
        """The reward the last action earned (calling it twice for one step counts it once)."""
        self.reward = float(reward)

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """The action for `obs` (the tanh head's output is the same whether or not `deterministic`)."""
        rtg = self.returns_to_go[-1] - self.reward / self.scale if self.t else self.target_return / self.scale
        self.reward = 0.0
        state = (np.asarray(obs, np.float32).reshape(-1) - self.state_mean) / self.state_std
        self.states.append(state)
        self.actions.append(np.zeros(len(self.low), np.float32))  # a placeholder: a_t is what is asked for
        self.returns_to_go.append(rtg)
        self.timesteps.append(min(self.t, self.max_ep_len - 1))
        self.t += 1
        n, pad = len(self.states), self.context - len(self.states)

        def left_pad(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([np.zeros((pad, *x.shape[1:]), x.dtype), x])[None])

        with one_thread(), torch.inference_mode():
            out = self.model(
                states=left_pad(np.stack(self.states)),
                actions=left_pad(np.stack(self.actions)),
                returns_to_go=left_pad(np.array(self.returns_to_go, np.float32)[:, None]),
                timesteps=left_pad(np.array(self.timesteps, np.int64)),
                attention_mask=left_pad(np.ones(n, np.int64)),
                return_dict=True,
            )
        action = out.action_preds[0, -1].numpy()
        self.actions[-1] = action
        return from_unit(action, self.low, self.high)


def load_agent(config: dict, tensors: dict) -> DecisionTransformerAgent:
    """The model's sizes come from its weights (a config.json cannot make it build a larger network than they
    are); the weights must then fit it exactly."""
    weights = {k[3:]: np.asarray(v) for k, v in tensors.items() if k.startswith("dt.")}
    p = config.get("policy")
    try:
        hidden, state_dim = weights["embed_state.weight"].shape
        act_dim = weights["embed_action.weight"].shape[1]
        n_layer = len({k.split(".")[2] for k in weights if k.startswith("encoder.h.")})
        dims = {
            "max_ep_len": weights["embed_timestep.weight"].shape[0],
            "n_positions": weights["encoder.wpe.weight"].shape[0],
            "n_inner": weights["encoder.h.0.mlp.c_fc.weight"].shape[1],
        }
        if not isinstance(p, dict):
            raise TypeError
        n_head = int(p["n_head"])
        sizes = (len(p["state_mean"]), len(p["state_std"]), len(p["action_low"]), len(p["action_high"]))
        if n_head <= 0 or hidden % n_head or sizes != (state_dim, state_dim, act_dim, act_dim):
            raise ValueError
        model = build_model(state_dim, act_dim, hidden, n_layer, n_head, **dims)
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()}, strict=True)
        return DecisionTransformerAgent(model, config)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError):
        raise UserError(
            "The Decision Transformer's config.json and model.safetensors do not fit together; the model folder "
            "is damaged or was not written by deeprl."
        ) from None
