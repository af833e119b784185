"""Proximal Policy Optimization (Schulman et al. 2017), Units 1 and 8, with the details that matter
(Huang et al., "The 37 implementation details of PPO"; CleanRL's ppo.py; SB3's PPO):

    ratio    = exp(log pi(a|s) - log pi_old(a|s))
    L_clip   = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))        A: GAE, normalized per minibatch
    L_value  = mean((V - R)^2), or with clip_range_vf: mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))
    loss     = L_clip - ent_coef * entropy + vf_coef * L_value
then Adam (eps 1e-5) after clipping the global gradient norm, n_epochs passes over the rollout in shuffled
minibatches, learning rate (and clip range) optionally annealed linearly ("lin_X"), optional early stop of the
update once the approximate KL exceeds 1.5 * target_kl (SB3's rule).

The update differentiates ppo_loss by autograd, or, for MLP policies on flat observations, through the same
gradient written out (deeprl.fast.ppo; chosen once where the policy is built, `autograd: true` forces the reference).

With `reward_signals` (ML-Agents' rnd and curiosity, deeprl.rewards) the policy gets one more value head per signal,
GAE runs per signal and the advantage is their mean; the update then goes through autograd. ML-Agents' trainer files
(`behaviors:`, deeprl.mlagents) map onto these settings.

Hyperparameters use RL-Zoo's names and meanings; the value loss is SB3's plain mean squared error (CleanRL halves
it, so CleanRL's vf_coef 0.5 is vf_coef 0.25 here; hyperparams/ppo.yml does that conversion).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch

from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.datasets import record_training
from deeprl.envs.vector import make_vec_env
from deeprl.errors import UserError
from deeprl.fast.flat import Adam, clip_grad_norm
from deeprl.fast.ppo import WrittenOutPPO
from deeprl.nets import set_threads
from deeprl.normalize import Normalizer, parse_normalize
from deeprl.policies import (
    build_policy,
    describe_space,
    load_policy_agent,
    load_policy_tensors,
    parse_policy_kwargs,
    policy_tensors,
)
from deeprl.rewards import RewardSignals, parse_reward_signals
from deeprl.rollout import Collector, RolloutBuffer, index_batch, slice_batch
from deeprl.settings import Rate, defaults, rate_at
from deeprl.train import whole_batches

if TYPE_CHECKING:
    from deeprl.log import TensorBoard
    from deeprl.policies import ActorCritic, PolicyAgent
    from deeprl.train import Run


@dataclass
class Settings:
    """SB3's PPO defaults, with RL-Zoo's names and meanings; hyperparams/ppo.yml holds the course's settings per env.

    :param n_timesteps: env steps to train (all envs together; the run ends at the first whole rollout past it)
    :param n_envs: envs stepped together
    :param n_steps: steps per env per rollout
    :param batch_size: minibatch size
    :param n_epochs: passes over each rollout
    :param learning_rate: Adam's step size, or lin_X: X * progress_remaining
    :param gamma: discount factor
    :param gae_lambda: GAE's lambda
    :param clip_range: PPO's epsilon, or lin_X
    :param clip_range_vf: clip of the value update around the old values (None: no clip), or lin_X
    :param ent_coef: entropy bonus weight
    :param vf_coef: value loss weight
    :param max_grad_norm: gradient norm clip
    :param target_kl: stop an update early once the approximate KL passes 1.5 * target_kl (None: never)
    :param normalize_advantage: normalize advantages (to mean 0, std 1)
    :param advantage_scope: over each minibatch (SB3, CleanRL) or over the whole rollout (`rollout`: ML-Agents)
    :param policy_kwargs: {net_arch: [64, 64] | {pi: [...], vf: [...]}, activation_fn: tanh|relu, ...}
    :param normalize: VecNormalize: true, or {norm_obs: true, norm_reward: false, clip_obs: 10, ...}
    :param vectorization: auto (native where it exists, else sync), sync, workers (a process per core), async
    :param checkpoint_every: updates between checkpoints
    :param checkpoint_seconds: and at least this long between two (an fsync'd file each; 0: no limit)
    :param log_interval: updates between TensorBoard points
    :param torch_threads: small networks run fastest on one thread; the other core steps envs
    :param autograd: true: every gradient through torch autograd (the reference), not the written-out MLP path
    :param reward_signals: ML-Agents' reward signals besides the env's (deeprl.rewards): {extrinsic: {strength},
        rnd: {strength, gamma, learning_rate, net_arch, variant}, curiosity: {...}}; None: the env's reward alone
    :param record_dataset: folder to record every finished training episode in, as a trajectory dataset (D4RL's
        replay data; deeprl.datasets.TrainingReplay); None: none
    """

    n_timesteps: int = 1_000_000
    n_envs: int = 1
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: Rate = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: Rate = 0.2
    clip_range_vf: Rate | None = None
    ent_coef: Rate = 0.0  # lin_X: ML-Agents' beta decaying with learning_rate_schedule linear
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    normalize_advantage: bool = True
    advantage_scope: str = "minibatch"
    policy_kwargs: Any = None
    normalize: Any = False
    vectorization: str = "auto"
    checkpoint_every: int = 20
    checkpoint_seconds: float | None = 10.0
    log_interval: int = 1
    torch_threads: int = 1
    autograd: bool = False
    reward_signals: Any = None
    record_dataset: str | None = None


DEFAULTS = defaults(Settings)
TAGS = ["ppo", "custom-implementation"]


class PPOPolicy(Protocol):
    """What the update reads of a policy: an ActorCritic, deeprl.rewards' SignalPolicy or selfplay's TeamPolicy."""

    def evaluate_actions(self, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


def schedule(value: Rate, name: str = "") -> Callable[[float], float]:
    """A Rate (a constant, or RL-Zoo's lin_X read by deeprl.settings) as a function of progress_remaining."""
    return lambda progress: rate_at(value, progress)


def ppo_loss(
    policy: PPOPolicy,
    mb: dict,
    clip_range: float,
    clip_range_vf: float | None,
    ent_coef: float,
    vf_coef: float,
    normalize_advantage: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PPO objective on one minibatch: (loss, dict of detached diagnostics tensors)."""
    log_prob, entropy, values = policy.evaluate_actions(mb["obs"], mb["actions"])
    adv = mb["advantages"]
    if normalize_advantage and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    log_ratio = log_prob - mb["log_probs"]
    ratio = torch.exp(log_ratio)
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
    if clip_range_vf is None:
        v_loss = (values - mb["returns"]).pow(2).mean()
    else:
        v_clipped = mb["values"] + torch.clamp(values - mb["values"], -clip_range_vf, clip_range_vf)
        v_loss = torch.max((values - mb["returns"]).pow(2), (v_clipped - mb["returns"]).pow(2)).mean()
    entropy_mean = entropy.mean()
    loss = pg_loss - ent_coef * entropy_mean + vf_coef * v_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # the unbiased low-variance estimator (Schulman's blog)
        clip_fraction = ((ratio - 1).abs() > clip_range).float().mean()
    return loss, {
        "policy_loss": pg_loss.detach(),
        "value_loss": v_loss.detach(),
        "entropy": entropy_mean.detach(),
        "approx_kl": approx_kl,
        "clip_fraction": clip_fraction,
    }


def make_optimizer(params: Iterable[torch.Tensor], lr: float) -> Adam:
    """Adam with eps 1e-5 (SB3 and CleanRL both use it for PPO); deeprl.fast.flat.Adam is torch's arithmetic in one
    fused call."""
    return Adam(params, lr=lr, eps=1e-5)


@dataclass
class AutogradStep:
    """One minibatch's ppo_loss, differentiated by torch autograd."""

    loss: torch.Tensor
    info: dict

    @property
    def approx_kl(self) -> torch.Tensor:
        return self.info["approx_kl"]

    def backward(self) -> None:
        self.loss.backward()


class AutogradPPO:
    """The reference objective: ppo_loss on the policy's modules, gradients by autograd."""

    def __init__(self, policy: PPOPolicy):
        self.policy = policy

    def prepare(self, data: dict, normalize_advantage: bool) -> dict:
        if normalize_advantage:
            adv = data["advantages"]
            data = {**data, "advantages": (adv - adv.mean()) / (adv.std() + 1e-8)}
        return data

    def loss(
        self,
        mb: dict,
        clip_range: float,
        clip_range_vf: float | None,
        ent_coef: float,
        vf_coef: float,
        normalize_advantage: bool = True,
    ) -> AutogradStep:
        return AutogradStep(
            *ppo_loss(self.policy, mb, clip_range, clip_range_vf, ent_coef, vf_coef, normalize_advantage)
        )

    def summary(self, steps: list[AutogradStep], clip_range: float) -> dict[str, float]:
        sums: dict[str, torch.Tensor] = {}
        for step in steps:
            for k, v in step.info.items():
                sums[k] = sums[k] + v if k in sums else v
        return {k: float(v) / len(steps) for k, v in sums.items()}


def ppo_objective(policy: PPOPolicy, autograd: bool = False) -> WrittenOutPPO | AutogradPPO:
    """How the update differentiates ppo_loss: through the policy's written-out twin where build_policy made one
    (deeprl.fast.ppo: the same gradient, a fraction of the time on small MLPs), else through autograd. Both give
    `prepare(data)`, `loss(mb, ...)` -> a step with `approx_kl` and `backward()`, and `summary(steps)`."""
    fast = getattr(policy, "fast", None)  # (a policy from elsewhere, selfplay's teams, has none)
    return WrittenOutPPO(fast) if fast is not None and not autograd else AutogradPPO(policy)


def ppo_update(
    policy: PPOPolicy,
    optimizer: Adam,
    data: dict,
    *,
    n_epochs: int,
    batch_size: int,
    clip_range: float,
    clip_range_vf: float | None,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float,
    target_kl: float | None,
    normalize_advantage: bool,
    rng: np.random.Generator,
    objective: WrittenOutPPO | AutogradPPO | None = None,
    advantage_scope: str = "minibatch",
) -> dict:
    """n_epochs of shuffled minibatch steps over one rollout; returns mean diagnostics (floats).

    With batch_size >= the rollout (RL-Zoo's CartPole: 256 of 256) every epoch's one minibatch is the whole
    rollout, and shuffling it would only reorder the terms of its means: the steps then read the rollout as it
    is, with its advantages normalized once (the same statistics every epoch) instead of once per step. The
    permutation is still drawn each epoch, so the run's generator (which also samples the actions) moves as it
    would with smaller minibatches."""
    objective = objective if objective is not None else ppo_objective(policy)
    n = data["advantages"].shape[0]
    params = [p for p in policy.parameters() if p.requires_grad]
    whole = batch_size >= n
    once = whole or advantage_scope == "rollout"  # advantages normalized once, over the whole rollout
    batch = objective.prepare(data, normalize_advantage=once and normalize_advantage and n > 1)
    steps: list[Any] = []  # the objective's own kind of step (its summary reads them)
    stopped = False
    for epoch in range(n_epochs):  # noqa: B007  (read after the loop: the epochs run)
        perm = rng.permutation(n)
        minibatches: Iterable[dict]
        if whole:
            minibatches = (batch,)
        else:  # one shuffle of the whole rollout per epoch, then contiguous slices: a view per minibatch
            shuffled = index_batch(batch, perm)
            minibatches = (slice_batch(shuffled, start, start + batch_size) for start in range(0, n, batch_size))
        for mb in minibatches:
            step = objective.loss(
                mb,
                clip_range,
                clip_range_vf,
                ent_coef,
                vf_coef,
                normalize_advantage=normalize_advantage and not once,
            )
            # SB3's rule: stop before the step that would take the policy too far from the one that collected
            if target_kl is not None and float(step.approx_kl) > 1.5 * target_kl:
                stopped = True
                break
            optimizer.zero_grad(set_to_none=True)
            step.backward()
            if max_grad_norm is not None and max_grad_norm > 0:
                clip_grad_norm(params, max_grad_norm)
            optimizer.step()
            steps.append(step)
        if stopped:
            break
    out = objective.summary(steps, clip_range) if steps else {}
    out.update(gradient_steps=len(steps), epochs=epoch + 1, early_stop=stopped)
    return out


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


def _check(hp: Settings) -> None:
    for key in ("n_envs", "n_steps", "batch_size", "n_epochs", "n_timesteps"):
        if getattr(hp, key) <= 0:
            raise UserError(f"{key} must be a positive integer, not {getattr(hp, key)!r}.")
    if hp.advantage_scope not in ("minibatch", "rollout"):
        raise UserError(f"advantage_scope must be minibatch or rollout, not {hp.advantage_scope!r}.")
    if hp.n_steps * hp.n_envs < 2 and hp.normalize_advantage:
        raise UserError("n_steps * n_envs must be at least 2 to normalize advantages.")
    if hp.checkpoint_seconds is not None and hp.checkpoint_seconds < 0:
        raise UserError(f"checkpoint_seconds must be a number of seconds (0 or more), not {hp.checkpoint_seconds!r}.")
    for key in ("gamma", "gae_lambda"):
        if not 0 <= getattr(hp, key) <= 1:
            raise UserError(f"{key} must lie between 0 and 1, not {getattr(hp, key)!r}.")
    if hp.reward_signals is not None:
        parse_reward_signals(hp.reward_signals)


def train(
    run: Run,
    rewards: Callable[[RolloutBuffer], None] | None = None,
    pretrain: Callable[[ActorCritic], None] | None = None,
) -> None:
    """`rewards` (GAIL, deeprl.algos.gail): called with each rollout before its advantages, it may replace the
    buffer's rewards (the discriminator's in place of the env's). `pretrain` (GAIL's behaviour cloning): called once
    with the new policy of a fresh run before its first rollout, it may train it (a resumed run has its weights)."""
    hp = run.settings(Settings)
    _check(hp)
    device = torch.device(run.device)
    if device.type == "cpu" and hp.torch_threads:
        set_threads(hp.torch_threads)
    n_envs, n_steps, total = hp.n_envs, hp.n_steps, hp.n_timesteps
    lr_at, clip_at = schedule(hp.learning_rate, "learning_rate"), schedule(hp.clip_range, "clip_range")
    clip_vf_at = None if hp.clip_range_vf is None else schedule(hp.clip_range_vf, "clip_range_vf")
    ent_at = schedule(hp.ent_coef, "ent_coef")  # (ML-Agents' trainer files decay beta linearly)
    norm_cfg = parse_normalize(hp.normalize)
    pkw = parse_policy_kwargs(hp.policy_kwargs)
    rng = np.random.default_rng(run.seed)

    timesteps, updates, env_seed = 0, 0, run.seed
    resumed_from = None
    if run.resumed:
        ckpt_tensors, ckpt_state = run.resumed
        timesteps, updates = ckpt_state["timesteps"], ckpt_state["updates"]
        resumed_from = timesteps
        # env states cannot be saved: a resumed run starts fresh episodes, seeded from where it stopped
        env_seed = run.seed + 1_000_003 * updates
    venv = make_vec_env(
        run.env_id, n_envs, seed=env_seed, env_kwargs=run.env_kwargs, training=True, vectorization=hp.vectorization
    )
    if hp.record_dataset:  # every episode the collector plays, as the env played it (D4RL's replay datasets)
        venv = record_training(venv, hp.record_dataset, run)
    obs_space, action_space = venv.single_observation_space, venv.single_action_space
    normalizer = None
    if norm_cfg["norm_obs"] or norm_cfg["norm_reward"]:
        normalizer = Normalizer(obs_space, **{"gamma": hp.gamma, **norm_cfg}, n_envs=n_envs)
    # the written-out MLP (deeprl.fast) where the shape allows it: built before the optimizer, which then steps the
    # parameters as one flat tensor; autograd: true keeps collection on it but differentiates ppo_loss by autograd
    # reward signals besides the env's (deeprl.rewards): one more value head per signal, trained through autograd
    signals_cfg = parse_reward_signals(hp.reward_signals) if hp.reward_signals is not None else {}
    intrinsic = any(k != "extrinsic" for k in signals_cfg)
    ext_strength = signals_cfg.get("extrinsic", {}).get("strength", 1.0)
    policy = build_policy(obs_space, action_space, pkw, device=device, fast=not intrinsic)
    signals = None
    if intrinsic:
        if hasattr(obs_space, "spaces"):
            raise UserError("Intrinsic reward signals need flat observations; this env's are a Dict.")
        signals = RewardSignals(signals_cfg, policy, int(np.prod(obs_space.shape)), action_space)
        signals.wrapped.to(device)
    trained = signals.wrapped if signals is not None else policy
    objective = ppo_objective(trained, autograd=hp.autograd)
    optimizer = make_optimizer(trained.parameters(), lr_at(1.0))
    if run.resumed:
        load_policy_tensors(policy, ckpt_tensors, run.env_id)
        if signals is not None:
            signals.load(ckpt_tensors)
            # reward signals: the RND / curiosity optimizers' state (checkpoints from before it was kept: fresh)
            signals.load_optimizer_state(ckpt_tensors, ckpt_state.get("signal_optimizers", {}))
        optimizer_from_tensors(optimizer, ckpt_tensors, ckpt_state["optimizer"])
        if normalizer is not None:
            normalizer.load_state_dict(ckpt_tensors, with_returns=True)
        run.restore_rng(ckpt_tensors, ckpt_state, rng)
    elif pretrain is not None:
        pretrain(policy)
    collector = Collector(venv, normalizer, gamma=hp.gamma, device=device, seed=env_seed, rng=rng)
    if run.resumed:
        collector.load_state(ckpt_state.get("collector", {}))
    buffer = RolloutBuffer(n_steps, n_envs, obs_space, action_space, device)
    policy_config = {
        **policy.config(),
        "normalize": normalizer.config() if normalizer is not None else None,
        "observation_space": describe_space(obs_space),
        "action_space": describe_space(action_space),
    }
    writer = run.writer()
    started, collect_s, update_s = time.perf_counter(), 0.0, 0.0

    def all_tensors() -> dict:
        out: dict = policy_tensors(policy)
        if signals is not None:  # (the model's config records the signals' networks: their weights travel with it)
            out.update(signals.tensors())
        if normalizer is not None:
            out.update(normalizer.state_dict())
        return out

    def checkpoint() -> None:
        opt_tensors, opt_state = optimizer_to_tensors(optimizer)
        tensors = {**policy_tensors(policy), **opt_tensors}
        state = {"timesteps": timesteps, "updates": updates, "optimizer": opt_state, "collector": collector.state()}
        if signals is not None:
            tensors.update(signals.tensors())
            # reward signals: the RND / curiosity optimizers' state, so --resume goes on as one run would
            signal_tensors, state["signal_optimizers"] = signals.optimizer_state()
            tensors.update(signal_tensors)
        if normalizer is not None:
            tensors.update(normalizer.checkpoint_state())
        run.checkpoint(tensors, state, rng)

    def save_model(stopped: bool) -> None:
        elapsed = time.perf_counter() - started
        run.save_model(
            all_tensors(),
            policy_config,
            stopped=stopped,
            timesteps=timesteps,
            updates=updates,
            episodes=collector.stats.episodes,
            collect_seconds=round(collect_s, 3),
            update_seconds=round(update_s, 3),
            env_step_seconds=round(collector.env_time, 3),
            steps_per_second=round((timesteps - (resumed_from or 0)) / elapsed, 1) if elapsed > 0 else None,
            resumed_from=resumed_from,
        )

    # a run ends with the first whole rollout that reaches n_timesteps (as SB3's): that is the total it shows.
    # The first checkpoint comes at checkpoint_every updates; later ones also wait checkpoint_seconds, so a short run
    # (CartPole: 20 updates in half a second) does not spend a tenth of its time writing them.
    with run.loop(
        whole_batches(total, n_steps * n_envs),
        "steps",
        initial=timesteps,
        checkpoint=checkpoint,
        save=save_model,
        close=venv.close,
        checkpoint_every=hp.checkpoint_every,
        checkpoint_from=updates,
        checkpoint_gap=hp.checkpoint_seconds or 0.0,
    ) as loop:
        while timesteps < total:
            t0 = time.perf_counter()
            timesteps += collector.collect(policy, buffer)
            if rewards is not None:
                rewards(buffer)
            if signals is not None:
                signals.process(
                    buffer,
                    collector.last_values(policy),
                    collector.obs,
                    hp.gamma,
                    hp.gae_lambda,
                    device,
                    progress_remaining=max(0.0, 1.0 - timesteps / total),
                )
            else:
                if ext_strength != 1.0:
                    buffer.rewards *= np.float32(ext_strength)
                buffer.compute_returns_and_advantage(collector.last_values(policy), hp.gamma, hp.gae_lambda)
            t1 = time.perf_counter()
            # SB3 computes the schedules after collecting: progress_remaining = 1 - steps done / budget
            progress_remaining = max(0.0, 1.0 - timesteps / total)
            lr = lr_at(progress_remaining)
            for group in optimizer.param_groups:
                group["lr"] = lr
            clip = clip_at(progress_remaining)
            stats = ppo_update(
                trained,
                optimizer,
                buffer.tensors(),
                n_epochs=hp.n_epochs,
                batch_size=hp.batch_size,
                clip_range=clip,
                clip_range_vf=None if clip_vf_at is None else clip_vf_at(progress_remaining),
                ent_coef=ent_at(progress_remaining),
                vf_coef=hp.vf_coef,
                max_grad_norm=hp.max_grad_norm,
                target_kl=hp.target_kl,
                normalize_advantage=hp.normalize_advantage,
                rng=rng,
                objective=objective,
                advantage_scope=hp.advantage_scope,
            )
            if signals is not None:
                signals.update(buffer, collector.obs, hp.n_epochs, hp.batch_size, rng)
                stats.update(signals.last_stats)
            updates += 1
            t2 = time.perf_counter()
            collect_s, update_s = collect_s + t1 - t0, update_s + t2 - t1
            mean_ret = collector.stats.mean_return()
            if loop.update(
                n_steps * n_envs,
                timesteps,
                lambda: (all_tensors(), policy_config),
                episode_return=mean_ret,
                episodes=collector.stats.episodes,
            ):
                break
            if updates % hp.log_interval == 0:
                _log(writer, timesteps, stats, lr, clip, collector, buffer, time.perf_counter() - started)
            loop.checkpoint_if_due(updates)


def _log(
    writer: TensorBoard,
    step: int,
    stats: dict,
    lr: float,
    clip: float,
    collector: Collector,
    buffer: RolloutBuffer,
    elapsed: float,
) -> None:
    values = {
        f"train/{k}": stats[k]
        for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        if k in stats
    }
    returns = cast(np.ndarray, buffer.returns)  # set with the rollout's advantages
    returns = returns if returns.ndim == 2 else returns[..., 0]  # the env's signal
    values.update(
        {
            "train/learning_rate": lr,
            "train/clip_range": clip,
            "train/explained_variance": explained_variance(buffer.values.ravel(), returns.ravel()),
        }
    )
    values.update({k: v for k, v in stats.items() if k.startswith(("rnd/", "curiosity/"))})
    if collector.stats.recent_returns:
        values["rollout/ep_rew_mean"] = collector.stats.mean_return()
    values["time/fps"] = step / max(elapsed, 1e-9)
    items = list(values.items())
    for ret, length in collector.stats.drain():  # every episode that ended in this rollout, at this step
        items += [("rollout/episode_return", ret), ("rollout/episode_length", length)]
    writer.add_scalars(items, step)  # one event for the step's scalars (deeprl.log.TensorBoard)


def load_agent(config: dict, tensors: dict) -> PolicyAgent:
    return load_policy_agent(config, tensors)
