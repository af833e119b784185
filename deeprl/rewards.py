"""ML-Agents' reward signals for PPO (issue 17 item 3): the env's reward (extrinsic) plus Random Network Distillation.

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
stop paying. ML-Agents' encoders use Swish; here ELU (smooth, negative outputs kept), a choice.

`variant: paper` is Burda et al. 2018's recipe instead (arXiv:1810.12894; openai/random-network-distillation):
the networks read observations normalized by their running mean and std and clipped to +-5, the intrinsic reward
is divided by the running std of its discounted running sum (no mean subtracted), `strength` is not applied, and
the advantage is 2 x extrinsic + 1 x intrinsic instead of the mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.nets import mlp
from deeprl.normalize import RunningMeanStd
from deeprl.rollout import compute_gae

KINDS = ("extrinsic", "rnd", "curiosity")
RND_KEYS = {"strength", "gamma", "learning_rate", "net_arch", "variant"}
PAPER_WEIGHTS = (2.0, 1.0)  # ext_coeff, int_coeff in the RND repo's run_atari.py


def parse_reward_signals(value: Any) -> dict:
    """{kind: settings} with defaults filled in; an unknown kind or key is one sentence."""
    if not isinstance(value, dict):
        raise UserError(f"reward_signals must be a mapping such as {{rnd: {{strength: 0.01}}}}, not {value!r}.")
    out: dict[str, dict] = {}
    for kind, section in value.items():
        if kind not in KINDS:
            raise UserError(f"Unknown reward signal '{kind}'; PPO takes {', '.join(KINDS)}.")
        if kind == "curiosity":
            raise UserError("The curiosity reward signal is not implemented yet; use rnd.")
        section = dict(section or {})
        if kind == "extrinsic":
            bad = sorted(set(section) - {"strength"})
            if bad:
                raise UserError(f"reward_signals.extrinsic takes strength (gamma is PPO's gamma), not '{bad[0]}'.")
            out[kind] = {"strength": float(section.get("strength", 1.0))}
            continue
        bad = sorted(set(section) - RND_KEYS)
        if bad:
            raise UserError(f"reward_signals.rnd does not take '{bad[0]}'; it takes {', '.join(sorted(RND_KEYS))}.")
        arch = section.get("net_arch", [64, 64, 64])
        if not isinstance(arch, list) or not arch or not all(isinstance(h, int) and h > 0 for h in arch):
            raise UserError(f"reward_signals.rnd.net_arch must be a list of layer sizes, not {arch!r}.")
        variant = section.get("variant", "mlagents")
        if variant not in ("mlagents", "paper"):
            raise UserError(f"reward_signals.rnd.variant must be mlagents or paper, not {variant!r}.")
        out[kind] = {"strength": float(section.get("strength", 0.01)), "gamma": float(section.get("gamma", 0.99)),
                     "learning_rate": float(section.get("learning_rate", 1e-4)), "net_arch": arch,
                     "variant": variant}
    return out


def signal_advantages(streams: list[dict], dones: np.ndarray, gae_lambda: float,
                      weights: list[float] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
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


class RND(nn.Module):
    """Random Network Distillation: a frozen random target, a predictor trained to match it."""

    def __init__(self, obs_dim: int, net_arch: list[int], learning_rate: float, paper: bool = False):
        super().__init__()
        self.target = mlp(obs_dim, net_arch[:-1], net_arch[-1], "elu")
        self.predictor = mlp(obs_dim, net_arch[:-1], net_arch[-1], "elu")
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
                xb = x[perm[start:start + batch_size]]
                loss = (self.predictor(xb) - self.target(xb)).pow(2).sum(-1).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(float(loss.detach()))
        return float(np.mean(losses)) if losses else float("nan")


class SignalPolicy(nn.Module):
    """An ActorCritic plus one value head per intrinsic signal, on its value trunk: `evaluate_actions` returns the
    values as [B, 1 + K] (the env's first), which ppo_loss's squared errors then average over the heads."""

    def __init__(self, policy: nn.Module, names: list[str]):
        super().__init__()
        self.policy = policy
        width = policy.value_head.in_features
        self.heads = nn.ModuleDict({n: nn.Linear(width, 1) for n in names})
        for head in self.heads.values():
            nn.init.orthogonal_(head.weight, 1.0)
            nn.init.zeros_(head.bias)

    def all_values(self, x: torch.Tensor) -> torch.Tensor:
        h = self.policy.vf_trunk(x)
        return torch.cat([self.policy.value_head(h)] + [head(h) for head in self.heads.values()], -1)

    def evaluate_actions(self, obs, actions):
        x = self.policy.features(obs)
        logp, entropy = self.policy.log_prob_entropy(self.policy.action_head(self.policy.pi_trunk(x)), actions)
        return logp, entropy, self.all_values(x)

    def intrinsic_values(self, obs: torch.Tensor) -> np.ndarray:
        """[B, K] values of the intrinsic heads (no gradients)."""
        with torch.no_grad():
            return self.all_values(self.policy.features(obs))[:, 1:].cpu().numpy()


class RewardSignals:
    """What a PPO run with intrinsic signals adds to each rollout: the rewards, the per-signal values and GAE, the
    predictor's training, and their tensors for checkpoints and the saved model."""

    def __init__(self, settings: dict, policy: nn.Module, obs_dim: int):
        self.settings = settings
        self.extrinsic_strength = settings.get("extrinsic", {}).get("strength", 1.0)
        self.names = [k for k in settings if k != "extrinsic"]
        self.wrapped = SignalPolicy(policy, self.names)
        rnd = settings["rnd"]
        self.rnd = RND(obs_dim, rnd["net_arch"], rnd["learning_rate"], paper=rnd["variant"] == "paper")
        self.paper = rnd["variant"] == "paper"
        self.last_stats: dict[str, float] = {}

    def process(self, buffer, last_ext_values: np.ndarray, last_obs: np.ndarray, gamma: float,
                gae_lambda: float, device) -> None:
        """Fill buffer.advantages (combined), buffer.values/returns as [T, N, 1 + K] (the env's first)."""
        from deeprl.policies.features import obs_to_tensor

        T, N = buffer.rewards.shape
        obs = buffer.obs
        rnd = self.settings["rnd"]
        intrinsic = self.rnd.rewards(obs, rnd["gamma"])
        if not self.paper:
            intrinsic = intrinsic * np.float32(rnd["strength"])
        flat = obs.reshape((T * N,) + obs.shape[2:])
        values_i = self.wrapped.intrinsic_values(obs_to_tensor(flat, device)).reshape(T, N, -1)
        last_i = self.wrapped.intrinsic_values(obs_to_tensor(last_obs, device))
        ext = buffer.rewards * np.float32(self.extrinsic_strength)
        streams = [{"rewards": ext, "values": buffer.values, "last_values": last_ext_values, "gamma": gamma,
                    "episodic": True},
                   {"rewards": intrinsic, "values": values_i[..., 0], "last_values": last_i[:, 0],
                    "gamma": rnd["gamma"], "episodic": False}]
        weights = list(PAPER_WEIGHTS) if self.paper else None
        adv, returns = signal_advantages(streams, buffer.dones, gae_lambda, weights)
        buffer.advantages = adv
        buffer.returns = np.stack(returns, -1)
        buffer.signal_values = np.stack([buffer.values, values_i[..., 0]], -1)
        self.last_stats = {"rnd/reward_mean": float(intrinsic.mean()), "rnd/value_mean": float(values_i.mean())}

    def update(self, buffer, n_epochs: int, batch_size: int, rng: np.random.Generator) -> None:
        self.last_stats["rnd/loss"] = self.rnd.update(buffer.obs, n_epochs, batch_size, rng)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"signals.head.{k}": v.detach().cpu() for k, v in self.wrapped.heads.state_dict().items()}
        out.update({f"signals.rnd_net.{k}": v.detach().cpu() for k, v in self.rnd.state_dict().items()})
        for prefix, rms in (("signals.rnd_obs_", self.rnd.obs_rms), ("signals.rnd_ret_", self.rnd.ret_rms)):
            if rms is not None:
                out.update({k: torch.as_tensor(np.asarray(v, np.float64)) for k, v in rms.state(prefix).items()})
        return out

    def load(self, tensors: dict) -> None:
        def part(prefix: str) -> dict:
            return {k[len(prefix):]: torch.as_tensor(np.asarray(v)) for k, v in tensors.items() if k.startswith(prefix)}

        self.wrapped.heads.load_state_dict(part("signals.head."))
        self.rnd.load_state_dict(part("signals.rnd_net."))
        for prefix, rms in (("signals.rnd_obs_", self.rnd.obs_rms), ("signals.rnd_ret_", self.rnd.ret_rms)):
            if rms is not None and f"{prefix}mean" in tensors:
                rms.load(tensors, prefix)
