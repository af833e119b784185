"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, the synchronous variant), Unit 6.

Every `n_steps` steps of `n_envs` envs, one gradient step on

    loss = -mean(A_t * log pi(a_t|s_t)) - ent_coef * mean(H[pi(.|s_t)]) + vf_coef * mean((R_t - V(s_t))^2)

with R_t the n-step return bootstrapped from V(s_{t+n}) (GAE with gae_lambda = 1.0, SB3's default; any lambda
works) and A_t = R_t - V(s_t). RMSprop with alpha 0.99, eps 1e-5 as Stable-Baselines3's default (`optimizer:
adam` selects Adam), gradient norm clipped at 0.5. Discrete actions use a categorical head, Box actions a Gaussian
with a state-independent log_std parameter (actions clipped to the bounds in the env, not squashed).

Observations and rewards can be normalized with VecNormalize's semantics (deeprl.normalize): the statistics are
saved in checkpoints and in the model, restored on --resume, and frozen in the agent that evaluation uses, which
sees raw rewards. Dict observations (panda-gym) go through the policies' multi-input features (one extractor per
key, concatenated). Rollout storage, collection, GAE, policies and normalization are deeprl's shared blocks
(deeprl.rollout, deeprl.policies, deeprl.normalize), the same PPO uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.errors import UserError
from deeprl.settings import Rate, defaults

if TYPE_CHECKING:
    import torch

    from deeprl.normalize import Normalizer
    from deeprl.policies import ActorCritic, PolicyAgent
    from deeprl.train import Run


@dataclass
class Settings:
    """SB3's A2C defaults (the course's Unit 6 uses them as they are); hyperparams/a2c.yml holds per-env settings.

    :param n_timesteps: env steps to train (the run ends at the first whole rollout past it)
    :param n_envs: envs stepped together
    :param n_steps: steps per env per update
    :param learning_rate: the optimizer's step size, or RL-Zoo's lin_X: X * (1 - progress)
    :param gamma: discount factor
    :param gae_lambda: 1.0: n-step returns
    :param ent_coef: entropy bonus weight
    :param vf_coef: value loss weight
    :param max_grad_norm: gradient norm clip
    :param optimizer: rmsprop (SB3's use_rms_prop=True) or adam
    :param rms_prop_alpha: RMSprop's alpha
    :param rms_prop_eps: RMSprop's eps
    :param normalize_advantage: normalize advantages over the rollout
    :param policy_kwargs: {net_arch: [64, 64] | {pi: [...], vf: [...]}, activation_fn, log_std_init, ortho_init}
    :param normalize: VecNormalize: true, or {norm_obs: true, norm_reward: true, clip_obs: 10, ...}
    :param vectorization: auto (native where it exists), sync or async (one process per env)
    :param checkpoint_every: env steps between checkpoints
    :param log_every: env steps between TensorBoard points
    :param torch_threads: 64-unit networks run fastest on one thread; the other core steps envs
    :param record_dataset: folder to record every finished training episode in, as a trajectory dataset (D4RL's
        replay data; deeprl.datasets.TrainingReplay); None: none
    """

    n_timesteps: int = 1_000_000
    n_envs: int = 1
    n_steps: int = 5
    learning_rate: Rate = 7e-4
    gamma: float = 0.99
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    optimizer: str = "rmsprop"
    rms_prop_alpha: float = 0.99
    rms_prop_eps: float = 1e-5
    normalize_advantage: bool = False
    policy_kwargs: Any = None
    normalize: Any = False
    vectorization: str = "auto"
    checkpoint_every: int = 100_000
    log_every: int = 2_000
    torch_threads: int = 1
    record_dataset: str | None = None


DEFAULTS = defaults(Settings)
TAGS = ["a2c", "custom-implementation"]


def _check_hp(hp: Settings) -> None:
    if hp.optimizer not in ("rmsprop", "adam"):
        raise UserError(f"optimizer must be rmsprop or adam, not {hp.optimizer!r}.")
    for key in ("n_envs", "n_steps", "n_timesteps"):
        if getattr(hp, key) < 1:
            raise UserError(f"{key} must be a whole number of at least 1, not {getattr(hp, key)!r}.")
    if not (0.0 <= hp.gae_lambda <= 1.0 and 0.0 <= hp.gamma <= 1.0):
        raise UserError("gamma and gae_lambda must lie between 0 and 1.")


def make_optimizer(params: Iterable[torch.nn.Parameter], hp: Settings, lr: float) -> torch.optim.Optimizer:
    import torch

    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, eps=1e-5)
    # SB3's A2C default: torch's RMSprop with alpha 0.99, eps 1e-5, no weight decay
    return torch.optim.RMSprop(params, lr=lr, alpha=hp.rms_prop_alpha, eps=hp.rms_prop_eps, weight_decay=0.0)


def a2c_loss(policy: ActorCritic, batch: dict, hp: Settings) -> tuple[torch.Tensor, dict[str, float]]:
    """The A2C objective on one whole rollout (flattened over steps and envs): (loss, stats)."""
    import torch

    log_prob, entropy, values = policy.evaluate_actions(batch["obs"], batch["actions"])
    adv = batch["advantages"]
    if hp.normalize_advantage and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -(adv * log_prob).mean()
    value_loss = torch.nn.functional.mse_loss(values, batch["returns"])
    entropy_loss = -entropy.mean()
    loss = policy_loss + hp.ent_coef * entropy_loss + hp.vf_coef * value_loss
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": -entropy_loss.item()}


def train(run: Run) -> None:
    """Train A2C inside `run` (callbacks see every update through the loop, as for every algorithm)."""
    import torch

    from deeprl.algos.ppo import explained_variance, schedule
    from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
    from deeprl.datasets import record_training
    from deeprl.envs.vector import make_vec_env
    from deeprl.nets import set_threads
    from deeprl.normalize import Normalizer, parse_normalize
    from deeprl.policies import build_policy, describe_space, load_policy_tensors, parse_policy_kwargs, policy_tensors
    from deeprl.rollout import Collector, RolloutBuffer
    from deeprl.train import whole_batches

    hp = run.settings(Settings)
    _check_hp(hp)
    if hp.torch_threads:
        set_threads(hp.torch_threads)
    n_envs, n_steps, total = hp.n_envs, hp.n_steps, hp.n_timesteps
    lr_at = schedule(hp.learning_rate, "learning_rate")
    pkw, nkw = parse_policy_kwargs(hp.policy_kwargs), {"gamma": hp.gamma, **parse_normalize(hp.normalize)}
    steps, updates = 0, 0
    state: dict = {}
    if run.resumed:
        tensors, state = run.resumed
        steps, updates = int(state["timesteps"]), int(state["updates"])
    venv = make_vec_env(run.env_id, n_envs, seed=run.seed, env_kwargs=run.env_kwargs, vectorization=hp.vectorization)
    if hp.record_dataset:  # every episode the collector plays, as the env played it (D4RL's replay datasets)
        venv = record_training(venv, hp.record_dataset, run)
    obs_space, act_space = venv.single_observation_space, venv.single_action_space
    # with its written-out twin (deeprl.fast) where the shape allows it: collection then runs it in numpy; the update
    # below differentiates a2c_loss by autograd
    policy = build_policy(obs_space, act_space, pkw, device=run.device, fast=True)
    opt = make_optimizer(policy.parameters(), hp, lr_at(1.0))
    norm = Normalizer(obs_space, n_envs=n_envs, **nkw)
    rng = np.random.default_rng(run.seed)
    if run.resumed:
        load_policy_tensors(policy, tensors, run.env_id)
        optimizer_from_tensors(opt, tensors, state["optimizer"])
        norm.load_state_dict(tensors, with_returns=True)
        run.restore_rng(tensors, state, rng)
    # a resumed run starts new episodes, seeded from the step count so that it is reproducible too
    collector = Collector(venv, norm if norm.active else None, gamma=hp.gamma, device=run.device, seed=run.seed + steps)
    if run.resumed:
        collector.load_state(state.get("collector", {}))
    buffer = RolloutBuffer(n_steps, n_envs, obs_space, act_space, device=run.device)
    policy_config = {
        **policy.config(),
        "normalize": norm.config() if norm.active else None,
        "observation_space": describe_space(obs_space),
        "action_space": describe_space(act_space),
    }

    def save_checkpoint() -> None:
        opt_tensors, opt_state = optimizer_to_tensors(opt)
        run.checkpoint(
            {**policy_tensors(policy), **opt_tensors, **norm.checkpoint_state()},
            {"timesteps": steps, "updates": updates, "optimizer": opt_state, "collector": collector.state()},
            rng,
        )

    def save_model(stopped: bool) -> None:
        run.save_model(
            {**policy_tensors(policy), **norm.state_dict()},
            policy_config,
            stopped=stopped,
            timesteps=steps,
            updates=updates,
            episodes=collector.stats.episodes,
            normalization=normalization_summary(norm),
        )

    writer = run.writer()
    next_log = steps + hp.log_every
    t0, steps0 = time.perf_counter(), steps
    # a run ends with the first whole rollout that reaches n_timesteps: that is the total it shows
    with run.loop(
        whole_batches(total, n_envs * n_steps),
        "steps",
        initial=steps,
        checkpoint=save_checkpoint,
        save=save_model,
        close=venv.close,
        checkpoint_every=hp.checkpoint_every,
    ) as loop:
        while steps < total:
            steps += collector.collect(policy, buffer)
            lr = lr_at(max(0.0, 1.0 - steps / total))  # SB3: progress_remaining after collecting
            for g in opt.param_groups:
                g["lr"] = lr
            buffer.compute_returns_and_advantage(collector.last_values(policy), hp.gamma, hp.gae_lambda)
            loss, stats = a2c_loss(policy, buffer.tensors(), hp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), hp.max_grad_norm)
            opt.step()
            updates += 1
            mean_ret = collector.stats.mean_return()
            if loop.update(
                n_envs * n_steps,
                steps,
                lambda: ({**policy_tensors(policy), **norm.state_dict()}, policy_config),
                **({"mean_return": mean_ret} if mean_ret is not None else {}),
            ):
                break
            if steps >= next_log:
                next_log += hp.log_every
                for k, v in stats.items():
                    writer.add_scalar(f"train/{k}", v, steps)
                writer.add_scalar("train/learning_rate", lr, steps)
                assert buffer.returns is not None  # computed with the advantages, before the update
                writer.add_scalar(
                    "train/explained_variance", explained_variance(buffer.values.ravel(), buffer.returns.ravel()), steps
                )
                for r, _ in collector.stats.drain():
                    writer.add_scalar("rollout/ep_rew", r, steps)
                if mean_ret is not None:
                    writer.add_scalar("rollout/ep_rew_mean", mean_ret, steps)
                writer.add_scalar("time/fps", (steps - steps0) / max(time.perf_counter() - t0, 1e-9), steps)
            loop.checkpoint_if_due(steps)


def normalization_summary(norm: Normalizer) -> dict | None:
    """Human-readable copy of the observation statistics for config.json (the tensors are what loading uses)."""
    if not norm.active:
        return None
    return {
        **norm.config(),
        "obs_mean": {k or "obs": rms.mean.tolist() for k, rms in norm.obs_rms.items()},
        "obs_var": {k or "obs": rms.var.tolist() for k, rms in norm.obs_rms.items()},
        "obs_count": {k or "obs": rms.count for k, rms in norm.obs_rms.items()},
    }


def load_agent(config: dict, tensors: dict) -> PolicyAgent:
    """The saved policy with its frozen observation statistics (rewards are never normalized when evaluating)."""
    import torch

    from deeprl.policies import load_policy_agent

    torch.set_num_threads(1)
    return load_policy_agent(config, tensors)
