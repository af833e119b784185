"""Sample Factory's actor-critic, as APPO (deeprl.algos.appo) trains it: an encoder, a GRU core, a policy head and
a value head on the core's output.

- Images (uint8 HxWxC): `convnet_simple`, conv 32@8x8/4, 64@4x4/2, 128@3x3/2 with ELU, then one FC layer of 512
  (SF's encoder_conv_mlp_layers [512]); vectors: an MLP (SF's encoder_mlp_layers, default [512, 512]) with ELU.
- Core: a GRU of `rnn_size` (512), its state carried through the rollout and set to zero where an episode ended;
  `rnn_size: 0` is SF's use_rnn=False (the encoder's output goes to the heads).
- Input normalization (SF's normalize_input): observations divided by `obs_scale` (255 for images), then a running
  mean and standard deviation per element, the result clipped to +/-5; the statistics are updated by the learner
  only and travel with the weights.
- Returns normalization (SF's normalize_returns): the value head predicts returns standardized by their running
  mean and variance (`ValueNormalizer`, buffers of this module too); `denormalize` gives the return scale.

Every buffer is a float32 tensor, so the whole state dict travels as one flat vector (deeprl.sampler.WeightChannel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError
from deeprl.nets import one_thread

CONV_OUT = 128  # channels of convnet_simple's last layer
CLIP_OBS = 5.0
MAX_WIDTH = 8192  # no layer wider than this is built from a model's config (configs are read from the hub)


class RunningNorm(nn.Module):
    """Running mean and variance of a batch dimension's elements (Welford's parallel update), as buffers."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, *self.mean.shape)
        n = x.shape[0]
        var32, mean32 = torch.var_mean(x, 0, correction=0)
        mean, var = mean32.double(), var32.double()
        total = self.count.double() + n
        delta = mean - self.mean.double()
        new_mean = self.mean.double() + delta * n / total
        m2 = self.var.double() * self.count.double() + var * n + delta.pow(2) * self.count.double() * n / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardize (in place when `x` needs no gradient: the inputs of the encoder never do)."""
        if x.requires_grad:
            return ((x - self.mean) / torch.sqrt(self.var + 1e-5)).clamp(-CLIP_OBS, CLIP_OBS)
        with torch.no_grad():
            return x.sub_(self.mean).mul_(torch.rsqrt(self.var + 1e-5)).clamp_(-CLIP_OBS, CLIP_OBS)


class ValueNormalizer(RunningNorm):
    """The running statistics of the returns (a scalar's); values are predicted in standardized units."""

    def __init__(self) -> None:
        super().__init__(())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / torch.sqrt(self.var + 1e-5)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sqrt(self.var + 1e-5) + self.mean


def _width(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WIDTH:
        raise UserError(f"{what} must be a whole number from 0 to {MAX_WIDTH}, not {str(value)[:40]!r}.")
    return value


class RecurrentActorCritic(nn.Module):
    """See the module's docstring. `config()` is what a model file records; `from_config` builds it back."""

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        n_actions: int,
        *,
        mlp_layers: list[int] | tuple[int, ...] = (512, 512),
        rnn_size: int = 512,
        normalize_input: bool = True,
        normalize_returns: bool = True,
        obs_scale: float = 1.0,
    ):
        super().__init__()
        self.obs_shape, self.n_actions = tuple(int(s) for s in obs_shape), int(n_actions)
        self.image = len(self.obs_shape) == 3
        # (the MLP encoder is for vector observations: an image model records none, so its config declares only the
        # widths its weights have)
        self.mlp_layers = [] if self.image else [_width(w, "encoder_mlp_layers") for w in mlp_layers]
        self.rnn_size = _width(rnn_size, "rnn_size")
        self.normalize_input, self.normalize_returns = bool(normalize_input), bool(normalize_returns)
        self.obs_scale = float(obs_scale)
        # images are HxWxC as the envs give them; the encoder reads CxHxW
        norm_shape = (self.obs_shape[2], self.obs_shape[0], self.obs_shape[1]) if self.image else self.obs_shape
        self.obs_norm = RunningNorm(norm_shape) if self.normalize_input else None
        self.returns_norm = ValueNormalizer() if self.normalize_returns else None
        layers: list[nn.Module] = []
        if self.image:
            c, h, w = norm_shape
            layers += [nn.Conv2d(c, 32, 8, 4), nn.ELU(), nn.Conv2d(32, 64, 4, 2), nn.ELU()]
            layers += [nn.Conv2d(64, CONV_OUT, 3, 2), nn.ELU(), nn.Flatten()]
            with torch.no_grad():
                width = int(nn.Sequential(*layers)(torch.zeros(1, c, h, w)).shape[1])
            widths = [512]  # SF's encoder_conv_mlp_layers
        else:
            width = int(np.prod(self.obs_shape))
            layers.append(nn.Flatten())
            widths = self.mlp_layers
        for out in widths:
            layers += [nn.Linear(width, out), nn.ELU()]
            width = out
        self.encoder = nn.Sequential(*layers)
        self.core = nn.GRUCell(width, self.rnn_size) if self.rnn_size else None
        width = self.rnn_size or width
        self.policy_head = nn.Linear(width, self.n_actions)
        self.value_head = nn.Linear(width, 1)

    def config(self) -> dict:
        return {
            "type": "recurrent_actor_critic",
            "obs_shape": list(self.obs_shape),
            "n_actions": self.n_actions,
            "mlp_layers": self.mlp_layers,
            "rnn_size": self.rnn_size,
            "normalize_input": self.normalize_input,
            "normalize_returns": self.normalize_returns,
            "obs_scale": self.obs_scale,
        }

    @classmethod
    def from_config(cls, config: dict, obs_shape: tuple[int, ...], n_actions: int) -> RecurrentActorCritic:
        """The model a config describes, for the env's spaces (a config that disagrees with them is refused)."""
        if not isinstance(config, dict) or config.get("type") != "recurrent_actor_critic":
            raise UserError("The model's policy is not a recurrent actor-critic (APPO's).")
        if list(config.get("obs_shape") or []) != list(obs_shape) or config.get("n_actions") != n_actions:
            raise UserError("The model was trained on observations or actions of another shape than this env's.")
        layers = config.get("mlp_layers", [])
        if not isinstance(layers, list) or len(layers) > 8:
            raise UserError("encoder_mlp_layers must be a list of at most 8 widths.")
        scale = config.get("obs_scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 1e6:
            raise UserError("obs_scale must be a positive number.")
        return cls(
            obs_shape,
            n_actions,
            mlp_layers=layers,
            rnn_size=config.get("rnn_size", 0),
            normalize_input=bool(config.get("normalize_input", False)),
            normalize_returns=bool(config.get("normalize_returns", False)),
            obs_scale=float(scale),
        )

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """[N, *obs_shape] (uint8 or float) -> [N, features]."""
        x = self._scaled(obs)
        if self.obs_norm is not None:
            x = self.obs_norm(x)
        return self.encoder(x)

    def _scaled(self, obs: torch.Tensor) -> torch.Tensor:
        """A fresh float tensor of the observations, images channels-first and contiguous, divided by obs_scale."""
        if self.image:
            obs = obs.permute(0, 3, 1, 2).contiguous()  # (in uint8: a quarter of the bytes to move)
        x = obs.float() if obs.dtype != torch.float32 else obs.clone()
        return x.mul_(1.0 / self.obs_scale) if self.obs_scale != 1.0 else x

    def update_obs_norm(self, obs: torch.Tensor, every: int = 1) -> None:
        """The learner's update of the input statistics, from a batch of raw observations (every `every`th)."""
        if self.obs_norm is not None:
            self.obs_norm.update(self._scaled(obs[::every]))

    def step(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of a batch: (action logits, standardized values, next recurrent state)."""
        z = self.encode(obs)
        if self.core is not None:
            z = h = self.core(z, h)
        return self.policy_head(z), self.value_head(z).squeeze(-1), h

    def unroll(self, obs: torch.Tensor, h0: torch.Tensor, dones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trajectories [B, L, *obs_shape] from states h0 [B, H], the state zeroed after each step whose `dones`
        [B, >= L-1] is 1: (logits [B, L, A], standardized values [B, L])."""
        B, L = obs.shape[0], obs.shape[1]
        z = self.encode(obs.reshape(B * L, *obs.shape[2:])).reshape(B, L, -1)
        if self.core is not None:
            h, outs = h0, []
            for t in range(L):
                if t > 0:
                    h = h * (1.0 - dones[:, t - 1 : t])
                h = self.core(z[:, t], h)
                outs.append(h)
            z = torch.stack(outs, 1)
        return self.policy_head(z), self.value_head(z).squeeze(-1)

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        return self.returns_norm.denormalize(values) if self.returns_norm is not None else values

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.rnn_size)


class RecurrentAgent:
    """Plays a saved APPO model one observation at a time, carrying the GRU state; `reset()` at each episode."""

    def __init__(self, model: RecurrentActorCritic, config: dict, seed: int = 0, action_repeat: int = 1):
        self.model, self.config = model.eval(), config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self.action_repeat = int(action_repeat)  # decide every this many calls, hold the action in between
        self.generator = torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self) -> None:
        self.h = self.model.initial_state(1)
        self.calls, self.action = 0, 0

    def act(self, obs: Any, deterministic: bool = True) -> int:
        self.calls += 1
        if (self.calls - 1) % self.action_repeat:
            return self.action
        with one_thread(), torch.inference_mode():  # one observation's pass: one thread is fastest (deeprl.nets)
            logits, _, self.h = self.model.step(torch.as_tensor(np.asarray(obs))[None], self.h)
            if deterministic:
                self.action = int(logits[0].argmax())
            else:
                self.action = int(torch.multinomial(torch.softmax(logits[0], -1), 1, generator=self.generator))
        return self.action
