"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, the synchronous variant), Unit 6.

Every `n_steps` steps of `n_envs` envs, one gradient step on

    loss = -mean(A_t * log pi(a_t|s_t)) - ent_coef * mean(H[pi(.|s_t)]) + vf_coef * mean((R_t - V(s_t))^2)

with R_t the n-step return bootstrapped from V(s_{t+n}) (GAE with gae_lambda = 1.0, SB3's default; any lambda
works) and A_t = R_t - V(s_t). RMSprop with alpha 0.99, eps 1e-5 as Stable-Baselines3's default (`optimizer:
adam` selects Adam), gradient norm clipped at 0.5. Discrete actions use a categorical head, Box actions a Gaussian
with a state-independent log_std parameter (actions clipped to the bounds in the env, not squashed).

Observations and rewards can be normalized with VecNormalize's semantics (deeprl.normalize): the statistics are
saved in checkpoints and in the model, restored on --resume, and frozen in the agent that evaluation uses, which
sees raw rewards. Dict observations (panda-gym) go through a multi-input encoder (deeprl.nets.MultiInputEncoder).
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
    "normalize_obs": False,
    "normalize_reward": False,
    "clip_obs": 10.0,
    "clip_reward": 10.0,
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
    for key in ("n_envs", "n_steps"):
        if not isinstance(hp[key], int) or hp[key] < 1:
            raise UserError(f"{key} must be a whole number of at least 1, not {hp[key]!r}.")
    if not 0.0 <= float(hp["gae_lambda"]) <= 1.0 or not 0.0 <= float(hp["gamma"]) <= 1.0:
        raise UserError("gamma and gae_lambda must lie between 0 and 1.")


def make_optimizer(params, hp: dict):
    import torch

    if hp["optimizer"] == "adam":
        return torch.optim.Adam(params, lr=hp["learning_rate"], eps=1e-5)
    # SB3's A2C default: torch RMSprop, alpha 0.99, eps 1e-5, no weight decay (not TF's eps-inside-sqrt variant)
    return torch.optim.RMSprop(params, lr=hp["learning_rate"], alpha=hp["rms_prop_alpha"], eps=hp["rms_prop_eps"],
                               weight_decay=0.0)


def a2c_loss(policy, batch: dict, hp: dict):
    """The A2C objective on one rollout (flattened over steps and envs); returns (loss, stats)."""
    import torch

    _, log_prob, entropy, values = policy.get_action_and_value(batch["obs"], batch["actions"])
    adv = batch["advantages"]
    if hp["normalize_advantage"] and adv.numel() > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = -(adv * log_prob).mean()
    value_loss = torch.nn.functional.mse_loss(values, batch["returns"])
    entropy_loss = -entropy.mean()
    loss = policy_loss + hp["ent_coef"] * entropy_loss + hp["vf_coef"] * value_loss
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": -entropy_loss}


# --------------------------------------------------------------------------------------------- INTERIM
# Stand-ins for deeprl.normalize / deeprl.policies / deeprl.rollout until those shared modules land.

class RunningMeanStd:
    """Running mean/var over batches (Chan et al.'s parallel update), as SB3's RunningMeanStd (count starts 1e-4)."""

    def __init__(self, shape=(), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        b_mean, b_var, b_count = x.mean(0), x.var(0), x.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total


class Normalizer:
    def __init__(self, obs_space, n_envs, norm_obs, norm_reward, clip_obs, clip_reward, gamma, eps=1e-8):
        from gymnasium import spaces

        self.is_dict = isinstance(obs_space, spaces.Dict)
        self.norm_obs, self.norm_reward = norm_obs, norm_reward
        self.clip_obs, self.clip_reward, self.gamma, self.eps = clip_obs, clip_reward, gamma, eps
        self.keys = sorted(obs_space.spaces) if self.is_dict else [None]
        shapes = {k: obs_space.spaces[k].shape for k in self.keys} if self.is_dict else {None: obs_space.shape}
        self.obs_rms = {k: RunningMeanStd(shapes[k]) for k in self.keys}
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(n_envs)
        self.training = True

    def _norm(self, x, rms):
        return np.clip((x - rms.mean) / np.sqrt(rms.var + self.eps), -self.clip_obs, self.clip_obs).astype(np.float32)

    def obs(self, obs, update=None):
        update = self.training if update is None else update
        if not self.norm_obs:
            return obs
        if self.is_dict:
            if update:
                for k in self.keys:
                    self.obs_rms[k].update(obs[k])
            return {k: self._norm(obs[k], self.obs_rms[k]) for k in self.keys}
        if update:
            self.obs_rms[None].update(obs)
        return self._norm(obs, self.obs_rms[None])

    def reward(self, reward, dones):
        if not self.norm_reward:
            return reward
        self.returns = self.returns * self.gamma + reward
        self.ret_rms.update(self.returns)
        self.returns[dones] = 0.0
        return np.clip(reward / np.sqrt(self.ret_rms.var + self.eps), -self.clip_reward, self.clip_reward)

    def to_tensors(self, prefix="norm"):
        out = {}
        for k in self.keys:
            name = f"{prefix}.obs" + (f".{k}" if k is not None else "")
            out[name + ".mean"] = self.obs_rms[k].mean
            out[name + ".var"] = self.obs_rms[k].var
            out[name + ".count"] = np.array(self.obs_rms[k].count)
        out[f"{prefix}.ret.var"] = np.array(self.ret_rms.var)
        out[f"{prefix}.ret.mean"] = np.array(self.ret_rms.mean)
        out[f"{prefix}.ret.count"] = np.array(self.ret_rms.count)
        out[f"{prefix}.returns"] = self.returns
        return out

    def from_tensors(self, tensors, prefix="norm"):
        for k in self.keys:
            name = f"{prefix}.obs" + (f".{k}" if k is not None else "")
            self.obs_rms[k].mean = np.array(tensors[name + ".mean"], np.float64)
            self.obs_rms[k].var = np.array(tensors[name + ".var"], np.float64)
            self.obs_rms[k].count = float(tensors[name + ".count"])
        if f"{prefix}.ret.var" in tensors:
            self.ret_rms.var = np.array(tensors[f"{prefix}.ret.var"], np.float64)
            self.ret_rms.mean = np.array(tensors[f"{prefix}.ret.mean"], np.float64)
            self.ret_rms.count = float(tensors[f"{prefix}.ret.count"])
        if f"{prefix}.returns" in tensors and len(tensors[f"{prefix}.returns"]) == len(self.returns):
            self.returns = np.array(tensors[f"{prefix}.returns"], np.float64)


def _policy_class():
    import torch
    from gymnasium import spaces
    from torch import nn

    from deeprl.nets import MultiInputEncoder, flat_dim, layer_init, mlp

    class ActorCritic(nn.Module):
        """SB3's ActorCriticPolicy: shared feature extractor (flatten / multi-input), separate pi and vf MLPs."""

        def __init__(self, obs_space, act_space, net_arch=(64, 64), activation="tanh", log_std_init=0.0):
            super().__init__()
            if isinstance(obs_space, spaces.Dict):
                self.encoder = MultiInputEncoder(obs_space)
                in_dim = self.encoder.features
            else:
                self.encoder = nn.Flatten()
                in_dim = flat_dim(obs_space)
            self.discrete = isinstance(act_space, spaces.Discrete)
            last = net_arch[-1] if net_arch else in_dim
            self.pi = mlp(in_dim, net_arch, activation=activation)
            self.vf = mlp(in_dim, net_arch, activation=activation)
            n_out = int(act_space.n) if self.discrete else int(np.prod(act_space.shape))
            self.action_net = layer_init(nn.Linear(last, n_out), 0.01)
            self.value_net = layer_init(nn.Linear(last, 1), 1.0)
            if not self.discrete:
                self.log_std = nn.Parameter(torch.full((n_out,), float(log_std_init)))

        def features(self, obs):
            if isinstance(obs, dict):
                return self.encoder(obs)
            return self.encoder(obs.float())

        def dist(self, f):
            logits = self.action_net(self.pi(f))
            if self.discrete:
                return torch.distributions.Categorical(logits=logits)
            return torch.distributions.Normal(logits, self.log_std.exp().expand_as(logits))

        def get_value(self, obs):
            return self.value_net(self.vf(self.features(obs))).squeeze(-1)

        def get_action_and_value(self, obs, action=None, deterministic=False):
            f = self.features(obs)
            d = self.dist(f)
            if action is None:
                if deterministic:
                    action = d.probs.argmax(-1) if self.discrete else d.mean
                else:
                    action = d.sample()
            lp, ent = d.log_prob(action), d.entropy()
            if not self.discrete:
                lp, ent = lp.sum(-1), ent.sum(-1)
            return action, lp, ent, self.value_net(self.vf(f)).squeeze(-1)

    return ActorCritic

# --------------------------------------------------------------------------------------------- END INTERIM


def _obs_slice(obs, i):
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _build(obs_space, act_space, hp: dict):
    return _policy_class()(obs_space, act_space, list(hp["net_arch"]), hp["activation"], hp["log_std_init"])


def _to_torch(obs):
    import torch

    if isinstance(obs, dict):
        return {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in obs.items()}
    return torch.as_tensor(np.asarray(obs))


def _env_action(action: np.ndarray, act_space):
    from gymnasium import spaces

    if isinstance(act_space, spaces.Box):  # the Gaussian is unbounded; the env gets it clipped (SB3 does the same)
        return np.clip(action, act_space.low, act_space.high)
    return action


def space_config(space) -> dict:
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_config(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}


def train(run, callback=None) -> None:
    """Train A2C in `run`. `callback(env_steps, make_agent)` after each update (benchmarks): True stops training."""
    import torch

    from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
    from deeprl.envs.vector import make_vec_env

    hp = run.hyperparams
    _check_hp(hp)
    torch.set_num_threads(1)  # 64-unit networks: one thread is fastest; the other core steps envs
    n_envs, n_steps, gamma, lam = hp["n_envs"], hp["n_steps"], float(hp["gamma"]), float(hp["gae_lambda"])
    total = int(hp["n_timesteps"])
    steps, updates = 0, 0
    rng = np.random.default_rng(run.seed)
    if run.resumed:
        steps, updates = run.resumed[1]["timesteps"], run.resumed[1]["updates"]
    # a resumed run starts fresh episodes; seeding them from the step count keeps a resumed run reproducible
    venv = make_vec_env(run.env_id, n_envs, seed=run.seed + steps, env_kwargs=run.env_kwargs,
                        vectorization=hp["vectorization"])
    obs_space, act_space = venv.single_observation_space, venv.single_action_space
    policy = _build(obs_space, act_space, hp)
    opt = make_optimizer(policy.parameters(), hp)
    norm = Normalizer(obs_space, n_envs, hp["normalize_obs"], hp["normalize_reward"], hp["clip_obs"],
                      hp["clip_reward"], gamma)
    if run.resumed:
        tensors, state = run.resumed
        policy.load_state_dict({k[len("policy."):]: torch.as_tensor(np.array(v)) for k, v in tensors.items()
                                if k.startswith("policy.")})
        optimizer_from_tensors(opt, tensors, state["optimizer"])
        norm.from_tensors(tensors)
        run.restore_rng(tensors, state, rng)
    policy_config = {"net_arch": list(hp["net_arch"]), "activation": hp["activation"],
                     "observation_space": space_config(obs_space), "action_space": space_config(act_space)}

    def model_tensors():
        out = {f"policy.{k}": v for k, v in policy.state_dict().items()}
        if hp["normalize_obs"]:
            out.update({k: v for k, v in norm.to_tensors().items() if k.startswith("norm.obs")})
        return out

    def save_checkpoint():
        opt_tensors, opt_state = optimizer_to_tensors(opt)
        run.checkpoint({**{f"policy.{k}": v for k, v in policy.state_dict().items()}, **opt_tensors,
                        **norm.to_tensors()}, {"timesteps": steps, "updates": updates, "optimizer": opt_state}, rng)

    def save_model():
        run.save_model(model_tensors(), policy_config, timesteps=steps, updates=updates,
                       normalization=normalization_config(norm, hp))

    raw, _ = venv.reset(seed=run.seed + steps)
    obs = norm.obs(raw)
    is_dict = isinstance(obs, dict)
    # rollout storage: (n_steps, n_envs, ...)
    buf_obs = ({k: np.zeros((n_steps, n_envs, *v.shape[1:]), np.float32) for k, v in obs.items()} if is_dict
               else np.zeros((n_steps, n_envs, *np.asarray(obs).shape[1:]), np.float32))
    buf_act = np.zeros((n_steps, n_envs, *act_space.shape), np.int64 if not act_space.shape else np.float32)
    buf_rew = np.zeros((n_steps, n_envs), np.float32)
    buf_done = np.zeros((n_steps, n_envs), np.float32)
    buf_val = np.zeros((n_steps, n_envs), np.float32)
    ep_ret, ep_len = np.zeros(n_envs), np.zeros(n_envs, np.int64)
    recent: list[float] = []
    writer = run.writer()
    progress = run.progress(total, "steps", initial=steps)
    next_ckpt = steps + hp["checkpoint_every"]
    next_log = steps + hp["log_every"]
    lr0 = float(hp["learning_rate"])
    t_start = time.perf_counter()
    steps_at_start = steps

    try:
        while steps < total:
            for t in range(n_steps):
                with torch.no_grad():
                    action, _, _, value = policy.get_action_and_value(_to_torch(obs))
                action = action.numpy()
                if is_dict:
                    for k in obs:
                        buf_obs[k][t] = obs[k]
                else:
                    buf_obs[t] = obs
                buf_act[t], buf_val[t] = action, value.numpy()
                raw, reward, term, trunc, info = venv.step(_env_action(action, act_space))
                done = term | trunc
                ep_ret += reward
                ep_len += 1
                obs = norm.obs(raw)
                r = norm.reward(np.asarray(reward, np.float64), done).astype(np.float32)
                # A time limit is not a real end: bootstrap from the value of the last observation (SB3 does this)
                cut = np.flatnonzero(trunc & ~term)
                if cut.size:
                    final = info["final_obs"]
                    last = ({k: np.stack([final[i][k] for i in cut]) for k in final[cut[0]]} if is_dict
                            else np.stack([final[i] for i in cut]))
                    with torch.no_grad():
                        v_last = policy.get_value(_to_torch(norm.obs(last, update=False))).numpy()
                    r[cut] += gamma * v_last
                buf_rew[t], buf_done[t] = r, done
                for i in np.flatnonzero(done):
                    recent.append(float(ep_ret[i]))
                    ep_ret[i], ep_len[i] = 0.0, 0
                recent = recent[-100:]
            steps += n_envs * n_steps
            # GAE(lambda) advantages; lambda = 1 gives the n-step returns of A2C
            with torch.no_grad():
                next_value = policy.get_value(_to_torch(obs)).numpy()
            adv = np.zeros_like(buf_rew)
            gae = np.zeros(n_envs, np.float32)
            for t in reversed(range(n_steps)):
                nonterminal = 1.0 - buf_done[t]
                nv = next_value if t == n_steps - 1 else buf_val[t + 1]
                delta = buf_rew[t] + gamma * nv * nonterminal - buf_val[t]
                gae = delta + gamma * lam * nonterminal * gae
                adv[t] = gae
            returns = adv + buf_val
            flat = lambda x: torch.as_tensor(x.reshape(n_steps * n_envs, *x.shape[2:]))  # noqa: E731
            batch = {"obs": {k: flat(v) for k, v in buf_obs.items()} if is_dict else flat(buf_obs),
                     "actions": flat(buf_act), "advantages": flat(adv), "returns": flat(returns)}
            if hp["lr_schedule"] == "linear":
                for g in opt.param_groups:
                    g["lr"] = lr0 * max(0.0, 1.0 - steps / total)
            loss, stats = a2c_loss(policy, batch, hp)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), hp["max_grad_norm"])
            opt.step()
            updates += 1
            mean_ret = float(np.mean(recent)) if recent else float("nan")
            progress.update(n_envs * n_steps, mean_return=mean_ret)
            if steps >= next_log:
                next_log += hp["log_every"]
                for k, v in stats.items():
                    writer.add_scalar(f"train/{k}", float(v), steps)
                if recent:
                    writer.add_scalar("rollout/ep_rew_mean", mean_ret, steps)
                writer.add_scalar("time/fps", (steps - steps_at_start) / (time.perf_counter() - t_start), steps)
            if steps >= next_ckpt:
                next_ckpt += hp["checkpoint_every"]
                save_checkpoint()
            if callback is not None and callback(steps, lambda: A2CAgent(
                    _clone(policy, obs_space, act_space, hp), frozen(norm), act_space, run.env_id, run.env_kwargs,
                    {"algo": "a2c"})):
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


def normalization_config(norm, hp: dict) -> dict:
    """What config.json says about observation normalization (the statistics themselves are in the tensors too)."""
    if not hp["normalize_obs"]:
        return {"obs": False}
    return {"obs": True, "clip_obs": float(norm.clip_obs), "epsilon": norm.eps,
            "mean": {str(k): norm.obs_rms[k].mean.tolist() for k in norm.keys},
            "var": {str(k): norm.obs_rms[k].var.tolist() for k in norm.keys}}


def _clone(policy, obs_space, act_space, hp):
    import copy

    return copy.deepcopy(policy)


def frozen(norm):
    import copy

    out = copy.deepcopy(norm)
    out.training = False
    return out


class A2CAgent:
    """Acts with the trained policy; observations normalized with the frozen training statistics, inside act()."""

    def __init__(self, policy, norm, act_space, env_id: str, env_kwargs: dict, config: dict):
        self.policy, self.norm, self.act_space = policy, norm, act_space
        self.env_id, self.env_kwargs, self.config = env_id, env_kwargs, config

    def act(self, obs, deterministic: bool = True):
        import torch

        batch = ({k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict)
                 else np.asarray(obs)[None])
        batch = self.norm.obs(batch, update=False)
        with torch.no_grad():
            action, _, _, _ = self.policy.get_action_and_value(_to_torch(batch), deterministic=deterministic)
        action = _env_action(action.numpy(), self.act_space)[0]
        return int(action) if action.ndim == 0 else action


def load_agent(config: dict, tensors: dict) -> A2CAgent:
    import torch

    from deeprl.envs import make_env

    torch.set_num_threads(1)
    hp = {**DEFAULTS, **(config.get("hyperparams") or {})}
    env = make_env(config["env_id"], config.get("env_kwargs") or {})
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    policy = _build(obs_space, act_space, hp)
    expected = policy.state_dict()
    weights = {k[len("policy."):]: v for k, v in tensors.items() if k.startswith("policy.")}
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise UserError(f"The model file has no '{missing[0]}' weights; it is not an A2C model for {config['env_id']}.")
    from deeprl.modelio import check_shape

    for k, v in weights.items():
        if k in expected:
            check_shape(k, v, tuple(expected[k].shape), config["env_id"])
    policy.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in weights.items() if k in expected})
    policy.eval()
    norm = Normalizer(obs_space, 1, bool(hp["normalize_obs"]), False, hp["clip_obs"], hp["clip_reward"], hp["gamma"])
    if hp["normalize_obs"]:
        try:
            norm.from_tensors(tensors)
        except KeyError as exc:
            raise UserError(f"The model was trained with normalized observations but its file has no {exc} "
                            "statistics; it cannot act as trained.") from None
    norm.training = False
    return A2CAgent(policy, norm, act_space, config["env_id"], config.get("env_kwargs") or {}, config)
