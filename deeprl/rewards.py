"""ML-Agents' reward signals for PPO (issue 17 item 3): the env's reward (extrinsic), Random Network Distillation and
curiosity (ICM, the `Curiosity` class).

As ML-Agents' PPO trainer combines them (`trainers/ppo/trainer.py` `_process_trajectory`, read at commit 0c96d7d):

- each signal's reward is its provider's value times its `strength`;
- each signal has its own value head (here a linear head on the shared value trunk; the env's is the policy's own
  `value_head`), trained on its own returns (the heads' value losses are averaged, as ML-Agents averages them);
- GAE runs per signal with that signal's gamma and the shared lambda; the intrinsic stream ignores episode ends
  (RND's `_ignore_done`: its value bootstraps through them), the extrinsic one stops at them;
- the advantage PPO's policy loss uses is the mean of the per-signal advantages.

RND (`rnd_reward_provider.py`): a frozen random target network and a trained predictor of the same shape
(`net_arch`, ML-Agents' 64 x 3 in PyramidsRND.yaml) read the observation of each step (ML-Agents evaluates the
step's own observation, not the next one); the reward is the summed squared error of the prediction, and the
predictor learns (Adam, `learning_rate` 1e-4) to shrink it on the observations it is shown, so states seen often
stop paying. Both networks are ML-Agents' `LinearEncoder` (`swish_encoder`: Swish after every layer, its init).

`variant: paper` is Burda et al. 2018's recipe instead (arXiv:1810.12894; openai/random-network-distillation):
the networks read observations normalized by their running mean and std and clipped to +-5, the intrinsic reward
is divided by the running std of its discounted running sum (no mean subtracted), `strength` is not applied, and
the advantage is 2 x extrinsic + 1 x intrinsic instead of the mean (`int_coef`, 1 by default, may be `lin_X`:
the intrinsic weight then decays to 0 over the run as the learning rate does, so that a solved task stops paying
for novelty). On the native Pyramids it is the one that learns
in the budget: ML-Agents' RND reads the raw observation, where the agent's velocity (up to 47 m/s) outweighs the
0/1 ray tags, and its reward fades below 1e-3 by 100k steps; over the last 100k of 1M steps it reaches the gold
brick in 31 % of the training episodes (mean return -0.26), the paper's in 82 % (1.11) (`--hyperparams
"reward_signals:{rnd: {variant: paper}}"` with PyramidsRND.yaml; benchmarks/bench_unit5.py train --rnd-variant
paper).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.nets import mlp
from deeprl.normalize import RunningMeanStd
from deeprl.rollout import compute_gae
from deeprl.settings import Rate, convert, rate_at

if TYPE_CHECKING:
    from deeprl.policies import ActorCritic
    from deeprl.rollout import RolloutBuffer

KINDS = ("extrinsic", "rnd", "curiosity")
RND_KEYS = {"strength", "gamma", "learning_rate", "net_arch", "variant", "int_coef"}
CURIOSITY_KEYS = {"strength", "gamma", "learning_rate", "net_arch", "encoding_size"}
PAPER_WEIGHTS = (2.0, 1.0)  # ext_coeff, int_coeff in the RND repo's run_atari.py


def parse_reward_signals(value: Any) -> dict:
    """{kind: settings} with defaults filled in; an unknown kind or key is one sentence."""
    if not isinstance(value, dict):
        raise UserError(f"reward_signals must be a mapping such as {{rnd: {{strength: 0.01}}}}, not {value!r}.")
    out: dict[str, dict] = {}
    for kind, section in value.items():
        if kind not in KINDS:
            raise UserError(f"Unknown reward signal '{kind}'; PPO takes {', '.join(KINDS)}.")
        section = dict(section or {})
        if kind == "extrinsic":
            bad = sorted(set(section) - {"strength"})
            if bad:
                raise UserError(f"reward_signals.extrinsic takes strength (gamma is PPO's gamma), not '{bad[0]}'.")
            out[kind] = {"strength": float(section.get("strength", 1.0))}
            continue
        keys = RND_KEYS if kind == "rnd" else CURIOSITY_KEYS
        bad = sorted(set(section) - keys)
        if bad:
            raise UserError(f"reward_signals.{kind} does not take '{bad[0]}'; it takes {', '.join(sorted(keys))}.")
        # ML-Agents' defaults: RNDSettings (strength 0.01 in PyramidsRND.yaml, lr 1e-4), CuriositySettings (lr 3e-4)
        rnd = kind == "rnd"
        arch = section.get("net_arch", [64, 64, 64] if rnd else [128, 128])
        if "encoding_size" in section:  # curiosity's encoding_size is its encoder's width
            arch = [int(section["encoding_size"])] * len(arch)
        if not isinstance(arch, list) or not arch or not all(isinstance(h, int) and h > 0 for h in arch):
            raise UserError(f"reward_signals.{kind}.net_arch must be a list of layer sizes, not {arch!r}.")
        out[kind] = {
            "strength": float(section.get("strength", 0.01 if rnd else 0.02)),
            "gamma": float(section.get("gamma", 0.99)),
            "learning_rate": float(section.get("learning_rate", 1e-4 if rnd else 3e-4)),
            "net_arch": arch,
        }
        if rnd:
            variant = section.get("variant", "mlagents")
            if variant not in ("mlagents", "paper"):
                raise UserError(f"reward_signals.rnd.variant must be mlagents or paper, not {variant!r}.")
            out[kind]["variant"] = variant
            if "int_coef" in section:
                if variant != "paper":
                    raise UserError(
                        "reward_signals.rnd.int_coef weighs the paper variant's advantages; add variant: paper."
                    )
                coef = section["int_coef"]
                convert("reward_signals.rnd.int_coef", coef, Rate)  # a number or lin_X, checked now
                out[kind]["int_coef"] = coef if isinstance(coef, str) else float(coef)
    return out


def signal_advantages(
    streams: list[dict], dones: np.ndarray, gae_lambda: float, weights: list[float] | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-signal GAE, then the advantage the policy loss uses: the weighted sum (ML-Agents: the mean).

    Each stream: {rewards [T, N], values [T, N], last_values [N], gamma, episodic}; a non-episodic stream ignores
    `dones` (its value bootstraps across episode ends). Returns (combined advantages, each stream's returns)."""
    weights = weights if weights is not None else [1.0 / len(streams)] * len(streams)
    combined = np.zeros(dones.shape, np.float32)
    returns = []
    for w, s in zip(weights, streams):
        d = dones if s["episodic"] else np.zeros_like(dones)
        adv, ret = compute_gae(s["rewards"], s["values"], d, s["last_values"], s["gamma"], gae_lambda)
        combined += np.float32(w) * adv
        returns.append(ret)
    return combined, returns


def swish_encoder(in_dim: int, widths: list[int]) -> nn.Sequential:
    """ML-Agents' `LinearEncoder` (`torch_entities/layers.py`), the body of its RND networks: Linear + Swish per
    layer, the last one too, weights He-normal for a linear layer (std 1 / sqrt(fan_in)) and zero biases. Its small
    outputs keep RND's error, and so its reward, at ML-Agents' scale (an orthogonal-init ELU net's is ~50x it)."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in widths:
        lin = nn.Linear(last, width)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="linear")
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.SiLU()]
        last = width
    return nn.Sequential(*layers)


class RND(nn.Module):
    """Random Network Distillation: a frozen random target, a predictor trained to match it."""

    def __init__(self, obs_dim: int, net_arch: list[int], learning_rate: float, paper: bool = False):
        super().__init__()
        self.target = swish_encoder(obs_dim, net_arch)
        self.predictor = swish_encoder(obs_dim, net_arch)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=learning_rate)
        self.paper = paper
        self.obs_rms = RunningMeanStd((obs_dim,)) if paper else None
        self.ret_rms = RunningMeanStd(())  # the paper's running std of the discounted intrinsic return
        self.forward_filter: np.ndarray | None = None

    def _inputs(self, obs: np.ndarray) -> torch.Tensor:
        x = np.asarray(obs, np.float32).reshape(len(obs), -1)
        if self.obs_rms is not None:
            x = np.clip((x - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8), -5.0, 5.0)
        return torch.as_tensor(x, dtype=torch.float32)

    def error(self, obs: np.ndarray) -> np.ndarray:
        """The squared prediction error summed over the output, per observation."""
        with torch.no_grad():
            x = self._inputs(obs)
            return (self.predictor(x) - self.target(x)).pow(2).sum(-1).numpy()

    def rewards(self, obs: np.ndarray, gamma: float) -> np.ndarray:
        """Intrinsic rewards of a [T, N, ...] rollout's observations, [T, N] (before strength)."""
        T, N = obs.shape[:2]
        flat = obs.reshape(T * N, -1)
        if self.obs_rms is not None:
            self.obs_rms.update(flat)
        r = self.error(flat).reshape(T, N).astype(np.float32)
        if not self.paper:
            return r
        # RewardForwardFilter: a per-env discounted running sum of the rewards; divide by the std of its values
        if self.forward_filter is None:
            self.forward_filter = np.zeros(N, np.float64)
        sums = np.empty((T, N))
        for t in range(T):
            self.forward_filter = self.forward_filter * gamma + r[t]
            sums[t] = self.forward_filter
        self.ret_rms.update(sums.ravel())
        return (r / np.sqrt(self.ret_rms.var + 1e-8)).astype(np.float32)

    def update(self, obs: np.ndarray, n_epochs: int, batch_size: int, rng: np.random.Generator) -> float:
        """Train the predictor on these observations; returns the mean loss of the last epoch."""
        x = self._inputs(obs.reshape(len(obs) if obs.ndim == 2 else obs.shape[0] * obs.shape[1], -1))
        losses: list[float] = []
        for _ in range(n_epochs):
            losses = []
            perm = torch.from_numpy(rng.permutation(len(x)))
            for start in range(0, len(x), batch_size):
                xb = x[perm[start : start + batch_size]]
                loss = (self.predictor(xb) - self.target(xb)).pow(2).sum(-1).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else float("nan")


class SignalPolicy(nn.Module):
    """An ActorCritic plus one value head per intrinsic signal, on its value trunk: `evaluate_actions` returns the
    values as [B, 1 + K] (the env's first), which ppo_loss's squared errors then average over the heads."""

    def __init__(self, policy: ActorCritic, names: list[str]):
        super().__init__()
        self.policy = policy
        width = policy.value_head.in_features
        heads = {n: nn.Linear(width, 1) for n in names}
        for head in heads.values():
            nn.init.orthogonal_(head.weight, 1.0)
            nn.init.zeros_(head.bias)
        self.heads = nn.ModuleDict(heads)

    def all_values(self, x: torch.Tensor) -> torch.Tensor:
        h = self.policy.vf_trunk(x)
        return torch.cat([self.policy.value_head(h)] + [head(h) for head in self.heads.values()], -1)

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.policy.features(obs)
        logp, entropy = self.policy.log_prob_entropy(self.policy.action_head(self.policy.pi_trunk(x)), actions)
        return logp, entropy, self.all_values(x)

    def intrinsic_values(self, obs: torch.Tensor) -> np.ndarray:
        """[B, K] values of the intrinsic heads (no gradients)."""
        with torch.no_grad():
            return self.all_values(self.policy.features(obs))[:, 1:].cpu().numpy()


def _floats(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float32))


class Curiosity(nn.Module):
    """ML-Agents' curiosity (ICM, Pathak et al. 2017; `curiosity_reward_provider.py`): a state encoder phi, an
    inverse model (phi(s), phi(s')) -> the action taken, a forward model (phi(s), action) -> phi(s'). The reward is
    the forward model's error 0.5 * sum((phi_hat(s') - phi(s'))^2), at most 1/strength (so strength x reward <= 1),
    and zero until the first update; the loss is 10 x (0.2 forward + 0.8 inverse). The inverse and forward heads
    are 256 wide (ML-Agents' sizes); ELU stands for Swish."""

    def __init__(self, obs_dim: int, action_space: Any, net_arch: list[int], learning_rate: float, strength: float):
        super().__init__()
        kind = type(action_space).__name__
        if kind == "Discrete":
            self.nvec: tuple[int, ...] | None = (int(action_space.n),)
        elif kind == "MultiDiscrete":
            self.nvec = tuple(int(n) for n in np.asarray(action_space.nvec).ravel())
        else:
            self.nvec = None
        act_dim = sum(self.nvec) if self.nvec is not None else int(np.prod(action_space.shape))
        enc = net_arch[-1]
        self.encoder = mlp(obs_dim, net_arch, None, "elu")
        self.inverse = mlp(2 * enc, [256], act_dim, "elu")
        self.forward_model = mlp(enc + act_dim, [256], enc, "elu")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=learning_rate)
        self.max_reward = 1.0 / strength if strength > 0 else float("inf")
        self.updated = False

    def _actions(self, actions: torch.Tensor) -> torch.Tensor:
        if self.nvec is None:
            return actions.float().reshape(len(actions), -1)
        a = actions.long().reshape(len(actions), len(self.nvec))
        return torch.cat([nn.functional.one_hot(a[:, i], n).float() for i, n in enumerate(self.nvec)], -1)

    def _forward_error(
        self, obs: torch.Tensor, next_obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        phi, phi_next = self.encoder(obs), self.encoder(next_obs)
        predicted = self.forward_model(torch.cat([phi, self._actions(actions)], -1))
        return 0.5 * (predicted - phi_next).pow(2).sum(-1), phi, phi_next

    def rewards(self, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if not self.updated:
            return np.zeros(len(obs), np.float32)
        with torch.no_grad():
            err, _, _ = self._forward_error(_floats(obs), _floats(next_obs), torch.as_tensor(actions))
        return np.where(valid, np.minimum(err.numpy(), self.max_reward), 0.0).astype(np.float32)

    def update(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        actions: np.ndarray,
        valid: np.ndarray,
        n_epochs: int,
        batch_size: int,
        rng: np.random.Generator,
    ) -> float:
        keep = np.flatnonzero(valid)
        o, o2, a = _floats(obs[keep]), _floats(next_obs[keep]), torch.as_tensor(actions[keep])
        losses: list[float] = []
        for _ in range(n_epochs):
            losses = []
            perm = torch.from_numpy(rng.permutation(len(keep)))
            for start in range(0, len(keep), batch_size):
                idx = perm[start : start + batch_size]
                err, phi, phi_next = self._forward_error(o[idx], o2[idx], a[idx])
                out = self.inverse(torch.cat([phi, phi_next], -1))
                if self.nvec is None:
                    inverse = (out - self._actions(a[idx])).pow(2).sum(-1).mean()
                else:
                    target = a[idx].long().reshape(len(idx), len(self.nvec))
                    inverse = sum(
                        nn.functional.cross_entropy(logits, target[:, i])
                        for i, logits in enumerate(out.split(self.nvec, -1))
                    )
                loss = 10.0 * (0.2 * err.mean() + 0.8 * inverse)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(float(loss.detach()))
        self.updated = True
        return float(np.mean(losses)) if losses else float("nan")


class RewardSignals:
    """What a PPO run with intrinsic signals adds to each rollout: the rewards, the per-signal values and GAE, the
    providers' training, and their tensors for checkpoints and the saved model."""

    def __init__(self, settings: dict, policy: ActorCritic, obs_dim: int, action_space: Any = None):
        self.settings = settings
        self.extrinsic_strength = settings.get("extrinsic", {}).get("strength", 1.0)
        self.names = [k for k in settings if k != "extrinsic"]
        self.wrapped = SignalPolicy(policy, self.names)
        self.providers: dict[str, Any] = {}  # an RND or a Curiosity, told apart by name
        rnd = settings.get("rnd")
        self.paper = rnd is not None and rnd["variant"] == "paper"
        if rnd is not None:
            self.providers["rnd"] = RND(obs_dim, rnd["net_arch"], rnd["learning_rate"], paper=self.paper)
        cur = settings.get("curiosity")
        if cur is not None:
            self.providers["curiosity"] = Curiosity(
                obs_dim, action_space, cur["net_arch"], cur["learning_rate"], cur["strength"]
            )
        self.last_stats: dict[str, float] = {}

    @staticmethod
    def _transitions(
        buffer: RolloutBuffer, last_obs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat (obs, next obs, actions, valid): a step that ended an episode has no next observation here (the
        buffer holds the next episode's first), so curiosity leaves it out."""
        T, N = buffer.rewards.shape
        obs = np.asarray(buffer.obs, np.float32)
        next_obs = np.concatenate([obs[1:], np.asarray(last_obs, np.float32)[None]])
        return (
            obs.reshape(T * N, -1),
            next_obs.reshape(T * N, -1),
            buffer.actions.reshape(T * N, -1),
            ~buffer.dones.reshape(-1),
        )

    def process(
        self,
        buffer: RolloutBuffer,
        last_ext_values: np.ndarray,
        last_obs: np.ndarray,
        gamma: float,
        gae_lambda: float,
        device: torch.device | str,
        progress_remaining: float = 1.0,
    ) -> None:
        """Fill buffer.advantages (combined), buffer.signal_values/returns as [T, N, 1 + K] (the env's first);
        `progress_remaining` (1 at the start of the run, 0 at its end) for an annealed `int_coef`."""
        from deeprl.policies.features import obs_to_tensor

        T, N = buffer.rewards.shape
        obs, next_obs, actions, valid = self._transitions(buffer, last_obs)
        flat = buffer.obs.reshape((T * N,) + buffer.obs.shape[2:])
        values_i = self.wrapped.intrinsic_values(obs_to_tensor(flat, device)).reshape(T, N, -1)
        last_i = self.wrapped.intrinsic_values(obs_to_tensor(last_obs, device))
        streams = [
            {
                "rewards": buffer.rewards * np.float32(self.extrinsic_strength),
                "values": buffer.values,
                "last_values": last_ext_values,
                "gamma": gamma,
                "episodic": True,
            }
        ]
        self.last_stats = {}
        for k, name in enumerate(self.names):
            cfg, provider = self.settings[name], self.providers[name]
            if name == "rnd":
                r = provider.rewards(buffer.obs, cfg["gamma"])
                if not self.paper:
                    r = r * np.float32(cfg["strength"])
            else:
                r = provider.rewards(obs, next_obs, actions, valid).reshape(T, N) * np.float32(cfg["strength"])
            streams.append(
                {
                    "rewards": r,
                    "values": values_i[..., k],
                    "last_values": last_i[:, k],
                    "gamma": cfg["gamma"],
                    "episodic": False,
                }
            )
            self.last_stats[f"{name}/reward_mean"] = float(r.mean())
            self.last_stats[f"{name}/value_mean"] = float(values_i[..., k].mean())
        weights = None
        if self.paper:
            coef = convert("int_coef", self.settings["rnd"].get("int_coef", PAPER_WEIGHTS[1]), Rate)
            weights = [PAPER_WEIGHTS[0]] + [rate_at(coef, progress_remaining)] * len(self.names)
        adv, returns = signal_advantages(streams, buffer.dones, gae_lambda, weights)
        buffer.advantages = adv
        buffer.returns = np.stack(returns, -1)
        buffer.signal_values = np.concatenate([buffer.values[..., None], values_i], -1)

    def update(
        self, buffer: RolloutBuffer, last_obs: np.ndarray, n_epochs: int, batch_size: int, rng: np.random.Generator
    ) -> None:
        obs, next_obs, actions, valid = self._transitions(buffer, last_obs)
        for name, provider in self.providers.items():
            if name == "rnd":
                self.last_stats["rnd/loss"] = provider.update(buffer.obs, n_epochs, batch_size, rng)
            else:
                self.last_stats[f"{name}/loss"] = provider.update(
                    obs, next_obs, actions, valid, n_epochs, batch_size, rng
                )

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"signals.head.{k}": v.detach().cpu() for k, v in self.wrapped.heads.state_dict().items()}
        for name, provider in self.providers.items():
            out.update({f"signals.{name}_net.{k}": v.detach().cpu() for k, v in provider.state_dict().items()})
        rnd = self.providers.get("rnd")
        if rnd is not None:
            for prefix, rms in (("signals.rnd_obs_", rnd.obs_rms), ("signals.rnd_ret_", rnd.ret_rms)):
                if rms is not None:
                    out.update({k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in rms.state(prefix).items()})
        if "curiosity" in self.providers:  # (its reward is zero until the first update: a resumed run keeps that)
            out["signals.curiosity_updated"] = torch.tensor(float(self.providers["curiosity"].updated))
        return out

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """For a checkpoint (not the saved model): each provider's Adam moments and step counts, and the paper
        variant's per-env discounted running sum of intrinsic rewards, as (tensors, JSON state)."""
        from deeprl.checkpoint import optimizer_to_tensors

        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] = {}
        for name, provider in self.providers.items():
            t, st = optimizer_to_tensors(provider.optimizer, prefix=f"signals.{name}_optim")
            tensors.update(t)
            state[name] = st
        rnd = self.providers.get("rnd")
        if rnd is not None and rnd.forward_filter is not None:
            tensors["signals.rnd_forward_filter"] = torch.as_tensor(rnd.forward_filter)
        return tensors, state

    def load_optimizer_state(self, tensors: dict, state: dict[str, Any]) -> None:
        """Put back what optimizer_state saved (a checkpoint from before it was saved leaves fresh optimizers)."""
        from deeprl.checkpoint import optimizer_from_tensors

        for name, provider in self.providers.items():
            if name in state:
                optimizer_from_tensors(provider.optimizer, tensors, state[name], prefix=f"signals.{name}_optim")
        rnd = self.providers.get("rnd")
        if rnd is not None and "signals.rnd_forward_filter" in tensors:
            rnd.forward_filter = np.array(np.asarray(tensors["signals.rnd_forward_filter"]), np.float64)

    def load(self, tensors: dict) -> None:
        def part(prefix: str) -> dict:
            return {
                k[len(prefix) :]: torch.as_tensor(np.asarray(v)) for k, v in tensors.items() if k.startswith(prefix)
            }

        self.wrapped.heads.load_state_dict(part("signals.head."))
        for name, provider in self.providers.items():
            provider.load_state_dict(part(f"signals.{name}_net."))
        rnd = self.providers.get("rnd")
        if rnd is not None:
            for prefix, rms in (("signals.rnd_obs_", rnd.obs_rms), ("signals.rnd_ret_", rnd.ret_rms)):
                if rms is not None and f"{prefix}mean" in tensors:
                    rms.load(tensors, prefix)
        if "curiosity" in self.providers and "signals.curiosity_updated" in tensors:
            self.providers["curiosity"].updated = bool(float(np.asarray(tensors["signals.curiosity_updated"])))
