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

import numpy as np

from deeprl.errors import UserError

DEFAULTS = {
    "n_timesteps": 1_000_000,
    "n_envs": 4,
    "n_steps": 5,
    "learning_rate": 7e-4,
    "lr_schedule": "constant",  # constant | linear (to 0 at n_timesteps, SB3's linear_schedule)
    "gamma": 0.99,
    "gae_lambda": 1.0,  # 1.0 = n-step returns
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "optimizer": "rmsprop",  # rmsprop | adam
    "rms_prop_alpha": 0.99,
    "rms_prop_eps": 1e-5,
    "normalize_advantage": False,
    "net_arch": [64, 64],  # separate actor and critic trunks of these sizes (SB3's default for A2C)
    "activation": "tanh",
    "log_std_init": 0.0,
    "ortho_init": True,
    "policy_kwargs": None,  # RL-Zoo's form, e.g. "dict(log_std_init=-2, ortho_init=False)"; wins over the above
    "normalize_obs": False,
    "normalize_reward": False,
    "clip_obs": 10.0,
    "clip_reward": 10.0,
    "normalize": None,  # RL-Zoo's form (true, or "dict(norm_obs=True, norm_reward=False)"); wins over the above
    "vectorization": "sync",  # sync | async (one process per env)
    "checkpoint_every": 100_000,  # env steps
    "log_every": 2_000,  # env steps between TensorBoard points
}
TAGS = ["a2c", "custom-implementation"]



def _check_hp(hp: dict) -> None:
    if hp["optimizer"] not in ("rmsprop", "adam"):
        raise UserError(f"optimizer must be rmsprop or adam, not {hp['optimizer']!r}.")
    if hp["lr_schedule"] not in ("constant", "linear"):
        raise UserError(f"lr_schedule must be constant or linear, not {hp['lr_schedule']!r}.")
    for key in ("n_envs", "n_steps", "n_timesteps"):
        if not isinstance(hp[key], int) or hp[key] < 1:
            raise UserError(f"{key} must be a whole number of at least 1, not {hp[key]!r}.")
    if not (0.0 <= float(hp["gae_lambda"]) <= 1.0 and 0.0 <= float(hp["gamma"]) <= 1.0):
        raise UserError("gamma and gae_lambda must lie between 0 and 1.")
    if not float(hp["learning_rate"]) > 0:
        raise UserError(f"learning_rate must be positive, not {hp['learning_rate']!r}.")


def normalize_settings(hp: dict) -> dict:
    """The normalizer's settings: the explicit keys, overridden by RL-Zoo's `normalize` when given."""
    from deeprl.normalize import parse_normalize

    out = {"norm_obs": bool(hp["normalize_obs"]), "norm_reward": bool(hp["normalize_reward"]),
           "clip_obs": float(hp["clip_obs"]), "clip_reward": float(hp["clip_reward"]), "gamma": float(hp["gamma"])}
    if hp.get("normalize") is not None:
        out.update(parse_normalize(hp["normalize"]))
    return out


def policy_settings(hp: dict) -> dict:
    from deeprl.policies import parse_policy_kwargs

    given = {"net_arch": list(hp["net_arch"]), "activation_fn": hp["activation"], "ortho_init": hp["ortho_init"],
             "log_std_init": hp["log_std_init"]}
    if hp.get("policy_kwargs") is not None:
        extra = hp["policy_kwargs"]
        if isinstance(extra, str):
            from deeprl.policies import parse_call_kwargs

            extra = parse_call_kwargs(extra, "policy_kwargs")
        given.update(extra if isinstance(extra, dict) else {"policy_kwargs": extra})
    return parse_policy_kwargs(given)


def make_optimizer(params, hp: dict):
    import torch

    if hp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=hp["learning_rate"], eps=1e-5)
    # SB3's A2C default: torch's RMSprop with alpha 0.99, eps 1e-5, no weight decay
    return torch.optim.RMSprop(params, lr=hp["learning_rate"], alpha=hp["rms_prop_alpha"], eps=hp["rms_prop_eps"],
                               weight_decay=0.0)


def a2c_loss(policy, batch: dict, hp: dict):
    """The A2C objective on one whole rollout (flattened over steps and envs): (loss, stats)."""
    import torch

    log_prob, entropy, values = policy.evaluate_actions(batch["obs"], batch["actions"])
    adv = batch["advantages"]
    if hp["normalize_advantage"] and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -(adv * log_prob).mean()
    value_loss = torch.nn.functional.mse_loss(values, batch["returns"])
    entropy_loss = -entropy.mean()
    loss = policy_loss + hp["ent_coef"] * entropy_loss + hp["vf_coef"] * value_loss
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": -entropy_loss.item()}


def train(run, callback=None) -> None:
    """Train A2C inside `run`. `callback(env_steps, make_agent)`, called after every update (benchmarks use it to
    evaluate), stops training by returning True; `make_agent()` gives a frozen copy of the current agent."""
    import torch

    from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
    from deeprl.envs.vector import make_vec_env
    from deeprl.normalize import Normalizer
    from deeprl.policies import ActorCritic, describe_space, load_policy_tensors, policy_tensors
    from deeprl.rollout import Collector, RolloutBuffer

    hp = run.hyperparams
    _check_hp(hp)
    torch.set_num_threads(1)  # 64-unit networks: one thread is fastest, and leaves the other core to the envs
    n_envs, n_steps, total = hp["n_envs"], hp["n_steps"], int(hp["n_timesteps"])
    pkw, nkw = policy_settings(hp), normalize_settings(hp)
    steps, updates, state = 0, 0, {}
    if run.resumed:
        tensors, state = run.resumed
        steps, updates = int(state["timesteps"]), int(state["updates"])
    venv = make_vec_env(run.env_id, n_envs, seed=run.seed, env_kwargs=run.env_kwargs,
                        vectorization=hp["vectorization"])
    obs_space, act_space = venv.single_observation_space, venv.single_action_space
    policy = ActorCritic(obs_space, act_space, pkw["net_arch"], pkw["activation"], pkw["ortho_init"],
                         pkw["log_std_init"]).to(run.device)
    opt = make_optimizer(policy.parameters(), hp)
    norm = Normalizer(obs_space, n_envs=n_envs, **nkw)
    rng = np.random.default_rng(run.seed)
    if run.resumed:
        load_policy_tensors(policy, tensors, run.env_id)
        optimizer_from_tensors(opt, tensors, state["optimizer"])
        norm.load_state_dict(tensors, with_returns=True)
        run.restore_rng(tensors, state, rng)
    # a resumed run starts new episodes, seeded from the step count so that it is reproducible too
    collector = Collector(venv, norm if norm.active else None, gamma=float(hp["gamma"]), device=run.device,
                          seed=run.seed + steps)
    if run.resumed:
        collector.load_state(state.get("collector", {}))
    buffer = RolloutBuffer(n_steps, n_envs, obs_space, act_space, device=run.device)
    policy_config = {**policy.config(), "normalize": norm.config() if norm.active else None,
                     "observation_space": describe_space(obs_space), "action_space": describe_space(act_space)}

    def save_checkpoint():
        opt_tensors, opt_state = optimizer_to_tensors(opt)
        run.checkpoint({**policy_tensors(policy), **opt_tensors, **norm.checkpoint_state()},
                       {"timesteps": steps, "updates": updates, "optimizer": opt_state,
                        "collector": collector.state()}, rng)

    def save_model():
        run.save_model({**policy_tensors(policy), **norm.state_dict()}, policy_config, timesteps=steps,
                       updates=updates, episodes=collector.stats.episodes,
                       normalization=normalization_summary(norm))

    def make_agent():
        import copy

        from deeprl.policies import PolicyAgent

        frozen = copy.deepcopy(norm)
        frozen.training = False
        return PolicyAgent(copy.deepcopy(policy), frozen if norm.active else None,
                           {**run.base_config(), "policy": policy_config}, act_space)

    writer = run.writer()
    progress = run.progress(total, "steps", initial=steps)
    next_ckpt, next_log = steps + int(hp["checkpoint_every"]), steps + int(hp["log_every"])
    lr0, t0, steps0 = float(hp["learning_rate"]), time.perf_counter(), steps
    try:
        while steps < total:
            if hp["lr_schedule"] == "linear":
                for g in opt.param_groups:
                    g["lr"] = lr0 * max(0.0, 1.0 - steps / total)
            policy.eval()
            steps += collector.collect(policy, buffer)
            buffer.compute_returns_and_advantage(collector.last_values(policy), float(hp["gamma"]),
                                                 float(hp["gae_lambda"]))
            policy.train()
            loss, stats = a2c_loss(policy, buffer.tensors(), hp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), hp["max_grad_norm"])
            opt.step()
            updates += 1
            mean_ret = collector.stats.mean_return()
            progress.update(n_envs * n_steps, **({"mean_return": mean_ret} if mean_ret is not None else {}))
            if steps >= next_log:
                next_log += int(hp["log_every"])
                for k, v in stats.items():
                    writer.add_scalar(f"train/{k}", v, steps)
                for r, n in collector.stats.drain():
                    writer.add_scalar("rollout/ep_rew", r, steps)
                if mean_ret is not None:
                    writer.add_scalar("rollout/ep_rew_mean", mean_ret, steps)
                writer.add_scalar("time/fps", (steps - steps0) / max(time.perf_counter() - t0, 1e-9), steps)
            if steps >= next_ckpt:
                next_ckpt += int(hp["checkpoint_every"])
                save_checkpoint()
            if callback is not None and callback(steps, make_agent):
                break
    except KeyboardInterrupt:
        save_checkpoint()
        save_model()
        progress.close()
        venv.close()
        raise
    progress.close()
    venv.close()
    save_checkpoint()
    save_model()


def normalization_summary(norm) -> dict | None:
    """Human-readable copy of the observation statistics for config.json (the tensors are what loading uses)."""
    if not norm.active:
        return None
    return {**norm.config(),
            "obs_mean": {k or "obs": rms.mean.tolist() for k, rms in norm.obs_rms.items()},
            "obs_var": {k or "obs": rms.var.tolist() for k, rms in norm.obs_rms.items()},
            "obs_count": {k or "obs": rms.count for k, rms in norm.obs_rms.items()}}


def load_agent(config: dict, tensors: dict):
    """The saved policy with its frozen observation statistics (rewards are never normalized when evaluating)."""
    import torch

    from deeprl.policies import load_policy_agent

    torch.set_num_threads(1)
    return load_policy_agent(config, tensors)
