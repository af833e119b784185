"""Proximal Policy Optimization (Schulman et al. 2017), Units 1 and 8, with the details that matter
(Huang et al., "The 37 implementation details of PPO"; CleanRL's ppo.py; SB3's PPO):

    ratio    = exp(log pi(a|s) - log pi_old(a|s))
    L_clip   = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))        A: GAE, normalized per minibatch
    L_value  = mean((V - R)^2), or with clip_range_vf: mean(max((V - R)^2, (V_old + clip(V - V_old) - R)^2))
    loss     = L_clip - ent_coef * entropy + vf_coef * L_value
then Adam (eps 1e-5) after clipping the global gradient norm, n_epochs passes over the rollout in shuffled
minibatches, learning rate (and clip range) optionally annealed linearly ("lin_X"), optional early stop of the
update once the approximate KL exceeds 1.5 * target_kl (SB3's rule).

Hyperparameters use RL-Zoo's names and meanings; the value loss is SB3's plain mean squared error (CleanRL halves
it, so CleanRL's vf_coef 0.5 is vf_coef 0.25 here; hyperparams/ppo.yml does that conversion).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
from deeprl.envs.vector import make_vec_env
from deeprl.errors import UserError
from deeprl.nets import Adam, clip_grad_norm, set_threads
from deeprl.normalize import Normalizer, parse_normalize
from deeprl.policies import (build_policy, describe_space, load_policy_agent, load_policy_tensors, parse_policy_kwargs,
                             policy_tensors)
from deeprl.rollout import Collector, RolloutBuffer, index_batch, slice_batch
from deeprl.train import whole_batches

DEFAULTS = {
    # SB3's PPO defaults; hyperparams/ppo.yml holds the course's settings per env
    "n_timesteps": 1_000_000,
    "n_envs": 1,
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,  # or "lin_X": X * (1 - progress)
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,  # or "lin_X"
    "clip_range_vf": None,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "target_kl": None,
    "normalize_advantage": True,
    "policy_kwargs": None,  # {net_arch: [64, 64] | {pi: [...], vf: [...]}, activation_fn: tanh|relu, ...}
    "normalize": False,  # VecNormalize: true, or {norm_obs: true, norm_reward: false, clip_obs: 10, ...}
    # ours
    "vectorization": "auto",  # auto (native where it exists, else sync), sync, workers (a process per core), async
    "checkpoint_every": 20,  # updates
    "checkpoint_seconds": 10.0,  # and at least this long between two (an fsync'd file each; 0: no limit)
    "log_interval": 1,  # updates between TensorBoard points
    "torch_threads": 1,  # small networks run fastest on one thread; the other core steps envs
    "autograd": False,  # true: every gradient through torch autograd (the reference), not the written-out MLP path
}
TAGS = ["ppo", "custom-implementation"]


def schedule(value, name: str):
    """A constant, or RL-Zoo's "lin_X" (X * progress_remaining), as a function of progress_remaining."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            start = float(value[4:])
        except ValueError:
            raise UserError(f"{name} '{value}' is not of the form lin_<number>, e.g. lin_2.5e-4.") from None
        return lambda progress: start * progress
    try:
        const = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number or lin_<number>, not {value!r}.") from None
    return lambda progress: const


def ppo_loss(policy, mb: dict, clip_range: float, clip_range_vf: float | None, ent_coef: float, vf_coef: float,
             normalize_advantage: bool = True):
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
    return loss, {"policy_loss": pg_loss.detach(), "value_loss": v_loss.detach(), "entropy": entropy_mean.detach(),
                  "approx_kl": approx_kl, "clip_fraction": clip_fraction}


def make_optimizer(params, lr: float):
    """Adam with eps 1e-5 (SB3 and CleanRL both use it for PPO); deeprl.nets.Adam is torch's arithmetic in one
    fused call."""
    return Adam(params, lr=lr, eps=1e-5)


def ppo_backward(fast, mb: dict, clip_range: float, clip_range_vf: float | None, ent_coef: float, vf_coef: float,
                 normalize_advantage: bool = True, neg_adv_n: torch.Tensor | None = None) -> tuple:
    """ppo_loss's gradient written out (for FastMLP policies, on a batch from fast.prepare plus the rollout's
    log_probs, advantages, returns and values): sets the parameters' gradients and returns the per-sample terms
    that `diagnostics` turns into ppo_loss's numbers (kept raw: averaging them once per update instead of once
    per minibatch saves a dozen tensor ops a step).

    d mean(max(-A r, -A clip(r))) / d log_prob = -A r / B where the unclipped term is the max, else 0.
    The surrogate terms are kept divided by B (`neg_adv_n` = -A / B, given when the caller computed it once for
    many steps), so that derivative is one masked product; diagnostics multiply B back."""
    xp = fast.xp  # numpy on the CPU (the batch's per-sample arrays are numpy views there), else torch
    log_prob, values, ctx = fast.evaluate(mb)
    n = log_prob.shape[0]
    if neg_adv_n is None:
        adv = mb["advantages"]
        if normalize_advantage and n > 1:
            adv = _normalized(adv)
        neg_adv_n = adv * _const(-1.0 / n, adv)
    log_ratio = log_prob - mb["log_probs"]
    ratio = xp.exp(log_ratio)
    surr = neg_adv_n * ratio
    surr_clipped = neg_adv_n * xp.clip(ratio, 1 - clip_range, 1 + clip_range)
    g_logp = surr * (surr >= surr_clipped)
    err = values - mb["returns"]
    if clip_range_vf is None:
        sq = None  # err * err, squared once per update in `diagnostics`
        g_value = err * _const(2 * vf_coef / n, err)
    else:
        delta = values - mb["values"]
        err_clipped = mb["values"] + xp.clip(delta, -clip_range_vf, clip_range_vf) - mb["returns"]
        sq_unclipped, sq_clipped = err * err, err_clipped * err_clipped
        sq = xp.maximum(sq_unclipped, sq_clipped)
        g_value = xp.where(sq_unclipped >= sq_clipped, err, err_clipped * (abs(delta) <= clip_range_vf)) \
            * _const(2 * vf_coef / n, err)
    fast.backward(ctx, g_logp, g_value, -ent_coef / n)
    return ratio, log_ratio, surr, surr_clipped, err if sq is None else sq, sq is None, fast.dist_state(ctx), n


_CONSTS: dict = {}


def _const(value: float, like):
    """A cached 0-d tensor: tensor-by-tensor arithmetic skips the conversion a Python number costs each call
    (a numpy array takes the number as it is: it stays in the array's dtype)."""
    if isinstance(like, np.ndarray):
        return value
    key = (value, like.dtype, like.device)
    t = _CONSTS.get(key)
    if t is None:
        if len(_CONSTS) > 256:
            _CONSTS.clear()
        t = _CONSTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return t


def diagnostics(parts: list[tuple], clip_range: float, fast) -> dict:
    """ppo_loss's diagnostics over every sample of the ppo_backward calls in `parts`."""
    xp = fast.xp
    ratio, log_ratio, surr, surr_clipped, sq = (xp.concatenate(x) for x in list(zip(*parts))[:5])
    if parts[0][5]:
        sq = sq * sq
    sizes = [p[7] for p in parts]
    scale = float(sizes[0]) if len(set(sizes)) == 1 else \
        xp.concatenate([xp.full((k,), float(k), dtype=surr.dtype) for k in sizes])
    return {"policy_loss": (xp.maximum(surr, surr_clipped) * scale).mean(), "value_loss": sq.mean(),
            "entropy": fast.entropy([p[6] for p in parts]).mean(), "approx_kl": ((ratio - 1) - log_ratio).mean(),
            "clip_fraction": (abs(ratio - 1) > clip_range).sum() / len(ratio)}


def _normalized(adv):
    # torch's std is the unbiased one (SB3's normalization), numpy's needs ddof=1 to match
    std = adv.std(ddof=1) if isinstance(adv, np.ndarray) else adv.std()
    return (adv - adv.mean()) / (std + 1e-8)


def ppo_update(policy, optimizer, data: dict, *, n_epochs: int, batch_size: int, clip_range: float,
               clip_range_vf: float | None, ent_coef: float, vf_coef: float, max_grad_norm: float,
               target_kl: float | None, normalize_advantage: bool, rng: np.random.Generator,
               autograd: bool = False) -> dict:
    """n_epochs of shuffled minibatch steps over one rollout; returns mean diagnostics (floats).

    With batch_size >= the rollout (RL-Zoo's CartPole: 256 of 256) every epoch's one minibatch is the whole
    rollout, and shuffling it would only reorder the terms of its means: the steps then read the rollout as it
    is, with its advantages normalized once (the same statistics every epoch) instead of once per step. The
    permutation is still drawn each epoch, so the run's generator (which also samples the actions) moves as it
    would with smaller minibatches."""
    n = data["advantages"].shape[0]
    params = [p for p in policy.parameters() if p.requires_grad]
    fast = policy.fast() if hasattr(policy, "fast") and not autograd else None
    if fast is not None:
        data = {**fast.prepare(data["obs"], data["actions"]),
                **{k: fast.to_xp(data[k]) for k in ("log_probs", "advantages", "returns", "values")}}
    whole = batch_size >= n
    if whole and normalize_advantage and n > 1:
        data = {**data, "advantages": _normalized(data["advantages"])}
    norm_mb = normalize_advantage and not whole
    neg_adv_n = data["advantages"] * (-1.0 / n) if whole and fast is not None else None
    clip = max_grad_norm is not None and max_grad_norm > 0
    sums: dict[str, torch.Tensor] = {}
    parts: list[tuple] = []
    steps, stopped = 0, False
    for epoch in range(n_epochs):
        perm = rng.permutation(n)
        if whole:
            batches = (data,)
        else:  # one shuffle of the whole rollout per epoch, then contiguous slices: a view per minibatch
            shuffled = index_batch(data, perm)
            batches = (slice_batch(shuffled, start, start + batch_size) for start in range(0, n, batch_size))
        for mb in batches:
            if fast is not None:
                part = ppo_backward(fast, mb, clip_range, clip_range_vf, ent_coef, vf_coef, norm_mb, neg_adv_n)
                parts.append(part)
                approx_kl = None if target_kl is None else ((part[0] - 1) - part[1]).mean()
            else:
                loss, info = ppo_loss(policy, mb, clip_range, clip_range_vf, ent_coef, vf_coef, norm_mb)
                approx_kl = info["approx_kl"]
            # SB3's rule: stop before the step that would take the policy too far from the one that collected
            if target_kl is not None and approx_kl.item() > 1.5 * target_kl:
                stopped = True
                parts = parts[:-1]
                break
            if fast is None:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for k, v in info.items():
                    sums[k] = sums[k] + v if k in sums else v
            if clip:
                clip_grad_norm(params, max_grad_norm)
            optimizer.step()
            steps += 1
        if stopped:
            break
    if parts:
        out = {k: float(v) for k, v in diagnostics(parts, clip_range, fast).items()}
    else:
        out = {k: float(v) / steps for k, v in sums.items()} if steps else {}
    out.update(gradient_steps=steps, epochs=epoch + 1, early_stop=stopped)
    return out


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = np.var(target)
    return float("nan") if var == 0 else float(1 - np.var(target - pred) / var)


def _check(hp: dict) -> None:
    for key in ("n_envs", "n_steps", "batch_size", "n_epochs", "n_timesteps"):
        if not isinstance(hp[key], int) or hp[key] <= 0:
            raise UserError(f"{key} must be a positive integer, not {hp[key]!r}.")
    if hp["n_steps"] * hp["n_envs"] < 2 and hp["normalize_advantage"]:
        raise UserError("n_steps * n_envs must be at least 2 to normalize advantages.")
    gap = hp["checkpoint_seconds"]
    if gap is not None and (isinstance(gap, bool) or not isinstance(gap, (int, float)) or gap < 0):
        raise UserError(f"checkpoint_seconds must be a number of seconds (0 or more), not {gap!r}.")
    for key in ("gamma", "gae_lambda"):
        if not 0 <= float(hp[key]) <= 1:
            raise UserError(f"{key} must lie between 0 and 1, not {hp[key]!r}.")


def train(run) -> None:
    hp = {**DEFAULTS, **run.hyperparams}  # a run resumed from an older version lacks the keys added since
    _check(hp)
    device = torch.device(run.device)
    if device.type == "cpu" and hp["torch_threads"]:
        set_threads(int(hp["torch_threads"]))
    n_envs, n_steps, total = hp["n_envs"], hp["n_steps"], int(hp["n_timesteps"])
    lr_at, clip_at = schedule(hp["learning_rate"], "learning_rate"), schedule(hp["clip_range"], "clip_range")
    clip_vf_at = None if hp["clip_range_vf"] is None else schedule(hp["clip_range_vf"], "clip_range_vf")
    norm_cfg = parse_normalize(hp["normalize"])
    pkw = parse_policy_kwargs(hp["policy_kwargs"])
    rng = np.random.default_rng(run.seed)

    timesteps, updates, env_seed = 0, 0, run.seed
    resumed_from = None
    if run.resumed:
        ckpt_tensors, ckpt_state = run.resumed
        timesteps, updates = ckpt_state["timesteps"], ckpt_state["updates"]
        resumed_from = timesteps
        # env states cannot be saved: a resumed run starts fresh episodes, seeded from where it stopped
        env_seed = run.seed + 1_000_003 * updates
    venv = make_vec_env(run.env_id, n_envs, seed=env_seed, env_kwargs=run.env_kwargs, training=True,
                        vectorization=hp["vectorization"])
    obs_space, action_space = venv.single_observation_space, venv.single_action_space
    normalizer = None
    if norm_cfg["norm_obs"] or norm_cfg["norm_reward"]:
        normalizer = Normalizer(obs_space, **{"gamma": hp["gamma"], **norm_cfg}, n_envs=n_envs)
    policy = build_policy(obs_space, action_space, pkw).to(device)
    policy.fast()  # before the optimizer: it lays the parameters out flat, and Adam then steps them as one tensor
    optimizer = make_optimizer(policy.parameters(), lr_at(1.0))
    if run.resumed:
        load_policy_tensors(policy, ckpt_tensors, run.env_id)
        optimizer_from_tensors(optimizer, ckpt_tensors, ckpt_state["optimizer"])
        if normalizer is not None:
            normalizer.load_state_dict(ckpt_tensors, with_returns=True)
        run.restore_rng(ckpt_tensors, ckpt_state, rng)
    collector = Collector(venv, normalizer, gamma=hp["gamma"], device=device, seed=env_seed, rng=rng)
    if run.resumed:
        collector.load_state(ckpt_state.get("collector", {}))
    buffer = RolloutBuffer(n_steps, n_envs, obs_space, action_space, device)
    policy_config = {**policy.config(), "normalize": normalizer.config() if normalizer is not None else None,
                     "observation_space": describe_space(obs_space), "action_space": describe_space(action_space)}
    writer = run.writer()
    # a run ends with the first whole rollout that reaches n_timesteps (as SB3's): that is the total it shows
    progress = run.progress(whole_batches(total, n_steps * n_envs), "steps", initial=timesteps)
    started, collect_s, update_s = time.perf_counter(), 0.0, 0.0
    # the first checkpoint comes at checkpoint_every updates; later ones also wait checkpoint_seconds, so a short run
    # (CartPole: 20 updates in half a second) does not spend a tenth of its time writing them
    last_checkpoint, min_gap = -math.inf, float(hp["checkpoint_seconds"] or 0.0)

    def all_tensors() -> dict:
        out = policy_tensors(policy)
        if normalizer is not None:
            out.update(normalizer.state_dict())
        return out

    def checkpoint() -> None:
        opt_tensors, opt_state = optimizer_to_tensors(optimizer)
        tensors = {**policy_tensors(policy), **opt_tensors}
        if normalizer is not None:
            tensors.update(normalizer.checkpoint_state())
        run.checkpoint(tensors, {"timesteps": timesteps, "updates": updates, "optimizer": opt_state,
                                 "collector": collector.state()}, rng)

    def save_model(stopped: bool = False) -> None:
        elapsed = time.perf_counter() - started
        run.save_model(all_tensors(), policy_config, stopped=stopped, timesteps=timesteps, updates=updates,
                       episodes=collector.stats.episodes, collect_seconds=round(collect_s, 3),
                       update_seconds=round(update_s, 3), env_step_seconds=round(collector.env_time, 3),
                       steps_per_second=round((timesteps - (resumed_from or 0)) / elapsed, 1) if elapsed > 0 else None,
                       resumed_from=resumed_from)

    try:
        while timesteps < total:
            t0 = time.perf_counter()
            timesteps += collector.collect(policy, buffer)
            buffer.compute_returns_and_advantage(collector.last_values(policy), hp["gamma"], hp["gae_lambda"])
            t1 = time.perf_counter()
            # SB3 computes the schedules after collecting: progress_remaining = 1 - steps done / budget
            progress_remaining = max(0.0, 1.0 - timesteps / total)
            lr = lr_at(progress_remaining)
            for group in optimizer.param_groups:
                group["lr"] = lr
            clip = clip_at(progress_remaining)
            stats = ppo_update(policy, optimizer, buffer.tensors(), n_epochs=hp["n_epochs"],
                               batch_size=hp["batch_size"], clip_range=clip,
                               clip_range_vf=None if clip_vf_at is None else clip_vf_at(progress_remaining),
                               ent_coef=hp["ent_coef"], vf_coef=hp["vf_coef"], max_grad_norm=hp["max_grad_norm"],
                               target_kl=hp["target_kl"], normalize_advantage=hp["normalize_advantage"], rng=rng,
                               autograd=bool(hp["autograd"]))
            updates += 1
            t2 = time.perf_counter()
            collect_s, update_s = collect_s + t1 - t0, update_s + t2 - t1
            mean_ret = collector.stats.mean_return()
            progress.update(n_steps * n_envs, episode_return=mean_ret, episodes=collector.stats.episodes)
            if run.callbacks:
                run.after_update(timesteps, lambda: (all_tensors(), policy_config))
            if updates % hp["log_interval"] == 0:
                _log(writer, timesteps, stats, lr, clip, collector, buffer, time.perf_counter() - started)
            if updates % hp["checkpoint_every"] == 0 and time.perf_counter() - last_checkpoint >= min_gap:
                checkpoint()
                last_checkpoint = time.perf_counter()
    except KeyboardInterrupt:
        checkpoint()
        save_model(stopped=True)  # a stopped run is a model too: evaluate and push take it as it is
        progress.close()
        venv.close()
        raise
    progress.close()
    venv.close()
    checkpoint()
    save_model()


def _log(writer, step: int, stats: dict, lr: float, clip: float, collector, buffer, elapsed: float) -> None:
    values = {f"train/{k}": stats[k] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
              if k in stats}
    values.update({"train/learning_rate": lr, "train/clip_range": clip,
                   "train/explained_variance": explained_variance(buffer.values.ravel(), buffer.returns.ravel())})
    if collector.stats.recent_returns:
        values["rollout/ep_rew_mean"] = collector.stats.mean_return()
    values["time/fps"] = step / max(elapsed, 1e-9)
    items = list(values.items())
    for ret, length in collector.stats.drain():  # every episode that ended in this rollout, at this step
        items += [("rollout/episode_return", ret), ("rollout/episode_length", length)]
    add_scalars(writer, items, step)


def add_scalars(writer, items: list[tuple[str, float]], step: int) -> None:
    """(tag, value) pairs of one step as ONE TensorBoard event (a Summary with a value each, as tf.summary.merge
    wrote them): what add_scalar writes as one event per pair. Why: every event is a queue hand-off to the writer
    thread, which then checksums it in pure Python while holding the GIL; on a short run (an update every few
    hundredths of a second) an event per pair cost about a tenth of the training time."""
    try:
        from tensorboard.compat.proto.summary_pb2 import Summary

        file_writer = writer._get_file_writer()
    except (ImportError, AttributeError):  # a writer without torch's FileWriter: the public API, one by one
        for tag, v in items:
            writer.add_scalar(tag, v, step)
        return
    file_writer.add_summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in items]), step)


def load_agent(config: dict, tensors: dict):
    return load_policy_agent(config, tensors)
