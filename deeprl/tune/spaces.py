"""Search spaces, keyed by algorithm name, and the point of a space that reproduces an env's default settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from deeprl.errors import UserError

if TYPE_CHECKING:
    import optuna

# Network sizes by name, as RL-Zoo samples them (Optuna's categorical choices must be plain values).
NET_SIZES = {"tiny": 32, "small": 64, "medium": 256}
# Names an algorithm may give its hidden-layer sizes; the first one in its DEFAULTS is tuned.
NET_KEYS = ("net_arch", "hidden_sizes", "hidden", "h_size", "hidden_size")
EPISODE_BUDGET = "n_training_episodes"


# --------------------------------------------------------------------------------------------------------------
# Search spaces, keyed by algorithm name. Each returns proposals; `sample_hyperparams` keeps only the keys the
# algorithm has (its DEFAULTS), so a space may name keys an algorithm spells differently or lacks.


def _lr_key(base: dict) -> str:
    return "learning_rate" if "learning_rate" in base or "lr" not in base else "lr"


def _net(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    """Hidden-layer sizes under whichever key the algorithm uses, in the shape its default has."""
    for key in NET_KEYS:
        default = base.get(key)
        if isinstance(default, (list, tuple)) and default and all(isinstance(x, int) for x in default):
            size = NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]
            return {key: [size] * len(default)}
        if isinstance(default, int) and not isinstance(default, bool):
            return {key: NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]}
    if "policy_kwargs" in base:  # SB3's policy_kwargs: {net_arch: [...], activation_fn: ...}
        size = NET_SIZES[trial.suggest_categorical("net_arch", list(NET_SIZES))]
        kwargs = dict(base["policy_kwargs"]) if isinstance(base["policy_kwargs"], dict) else {}
        kwargs.pop("activation", None)
        kwargs["net_arch"] = [size, size]
        kwargs["activation_fn"] = trial.suggest_categorical("activation", ["tanh", "relu"])
        return {"policy_kwargs": kwargs}
    return {}


def _activation(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    for key in ("activation", "activation_fn"):
        if base.get(key) in ("tanh", "relu"):
            return {key: trial.suggest_categorical("activation", ["tanh", "relu"])}
    return {}


def _largest_divisor_at_most(total: int, limit: int) -> int:
    limit = max(1, min(limit, total))
    return next(d for d in range(limit, 0, -1) if total % d == 0)


def space_ppo(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    hp: dict[str, Any] = {
        # RL-Zoo also offers 8 and 16 steps and batches of 8 and 16: on a CPU those make a trial
        # several times slower per env step (many tiny gradient steps), so they are left out.
        "n_steps": trial.suggest_categorical("n_steps", [32, 64, 128, 256, 512, 1024, 2048]),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3, 0.4]),
        "n_epochs": trial.suggest_categorical("n_epochs", [1, 4, 5, 10, 20]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0]),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
    }
    # Minibatches must tile one rollout (n_steps * n_envs transitions) exactly.
    n_envs = int(base.get("n_envs") or 1)
    rollout = hp["n_steps"] * n_envs
    if "batch_size" in base:
        batch = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
        hp["batch_size"] = _largest_divisor_at_most(rollout, batch)
    else:
        for key in ("num_minibatches", "n_minibatches"):
            if key in base:
                wanted = trial.suggest_categorical("num_minibatches", [1, 2, 4, 8, 16, 32])
                hp[key] = _largest_divisor_at_most(rollout, wanted)
                break
    if "n_envs" in base:
        hp["n_envs"] = n_envs
    return {**hp, **_net(trial, base), **_activation(trial, base)}


def space_a2c(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    hp = {
        "n_steps": trial.suggest_categorical("n_steps", [5, 8, 16, 32, 64, 128, 256, 512]),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.0, 1.0),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]),
        "max_grad_norm": trial.suggest_categorical("max_grad_norm", [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0]),
    }
    if isinstance(base.get("normalize_advantage"), bool):
        hp["normalize_advantage"] = trial.suggest_categorical("normalize_advantage", [False, True])
    if base.get("optimizer") in ("rmsprop", "adam"):  # RL-Zoo's use_rms_prop
        hp["optimizer"] = trial.suggest_categorical("optimizer", ["rmsprop", "adam"])
    return {**hp, **_net(trial, base), **_activation(trial, base)}


def space_dqn(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    train_freq = trial.suggest_categorical("train_freq", [1, 4, 8, 16, 128, 256])
    subsample = trial.suggest_categorical("subsample_steps", [1, 2, 4, 8])
    hp = {
        _lr_key(base): trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 100, 128, 256, 512]),
        # 1e6 frames of Atari would not fit this kind of machine next to other work; 1e5 is the course's size
        "buffer_size": trial.suggest_categorical("buffer_size", [10_000, 50_000, 100_000]),
        "exploration_final_eps": trial.suggest_float("exploration_final_eps", 0.0, 0.2),
        "exploration_fraction": trial.suggest_float("exploration_fraction", 0.0, 0.5),
        "target_update_interval": trial.suggest_categorical("target_update_interval", [1, 1000, 5000, 10000]),
        "learning_starts": trial.suggest_categorical("learning_starts", [0, 1000, 5000, 10000, 20000]),
        "train_freq": train_freq,
        "gradient_steps": max(train_freq // subsample, 1),
    }
    return {**hp, **_net(trial, base)}


def space_reinforce(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    hp = {
        _lr_key(base): trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True),
        "gamma": trial.suggest_categorical("gamma", [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0]),
    }
    return {**hp, **_net(trial, base)}


def space_qlearning(trial: optuna.Trial | _DefaultsProbe, base: dict) -> dict:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.05, 1.0),
        "gamma": trial.suggest_categorical("gamma", [0.8, 0.9, 0.95, 0.98, 0.99, 0.995]),
        "decay_rate": trial.suggest_float("decay_rate", 1e-4, 5e-2, log=True),
        "min_epsilon": trial.suggest_categorical("min_epsilon", [0.0, 0.01, 0.05, 0.1]),
    }


SPACES: dict[str, Callable] = {
    "qlearning": space_qlearning,
    "reinforce": space_reinforce,
    "ppo": space_ppo,
    "a2c": space_a2c,
    "dqn": space_dqn,
}
# Budgets sampled when the user fixes none (Q-Learning: episodes); other algorithms train the env's usual budget.
BUDGET_CHOICES = {"qlearning": [1000, 2000, 5000, 10000, 25000]}


def budget_key(base: dict) -> str:
    """The key that sets how much an algorithm trains: env steps, or episodes (Q-Learning, course REINFORCE)."""
    if base.get("n_timesteps") is not None or EPISODE_BUDGET not in base:
        return "n_timesteps"
    return EPISODE_BUDGET


def tunable() -> list[str]:
    from deeprl.algos import available

    return [name for name in available() if name in SPACES]


def sample_hyperparams(trial: optuna.Trial | _DefaultsProbe, algo: str, base: dict, budget: int | None = None) -> dict:
    """Hyperparameters for one trial: valid for `algo` (keys from its DEFAULTS, constraints met).

    `base` is what the algorithm would train with for this env (DEFAULTS < hyperparams/<algo>.yml). `budget`
    fixes the training budget; without it, an episode budget is sampled and a step budget is the env default.
    """
    if algo not in SPACES:
        raise UserError(f"deeprl tune has no search space for {algo}; tunable: {', '.join(tunable())}.")
    proposals = SPACES[algo](trial, base)
    hp = {k: v for k, v in proposals.items() if k in base}
    key = budget_key(base)
    if budget is not None:
        hp[key] = int(budget)
    elif algo in BUDGET_CHOICES:
        hp[key] = trial.suggest_categorical(key, BUDGET_CHOICES[algo])
    elif base.get(key) is not None:
        hp[key] = int(base[key])
    else:
        raise UserError(f"{algo} has no default training budget for this env; give one with --n-timesteps.")
    return hp


class _DefaultsProbe:
    """A stand-in trial that answers each suggest_* with the algorithm's own setting for this env, where the
    search space can express it; the answers become the first trial of a warm-started study."""

    def __init__(self, base: dict):
        self.base = base
        self.params: dict = {}

    def _default(self, name: str) -> Any:
        if name == "learning_rate":
            value = self.base.get(_lr_key(self.base))
            return value if isinstance(value, (int, float)) else None
        if name == "net_arch":
            sizes = next((self.base[k] for k in NET_KEYS if self.base.get(k) is not None), None)
            if sizes is None and "policy_kwargs" in self.base:
                kwargs = self.base["policy_kwargs"] if isinstance(self.base["policy_kwargs"], dict) else {}
                sizes = kwargs.get("net_arch", [64, 64])  # SB3's default MLP, which ours equals
            size = sizes[0] if isinstance(sizes, (list, tuple)) and sizes else sizes
            return next((k for k, v in NET_SIZES.items() if v == size), None)
        if name == "activation":
            policy_kwargs = self.base.get("policy_kwargs")
            kwargs = policy_kwargs if isinstance(policy_kwargs, dict) else {}
            return self.base.get("activation") or kwargs.get("activation_fn") or "tanh"
        return self.base.get(name)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._default(name)
        if value in choices:
            self.params[name] = value
            return value
        return choices[0]

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        value = self._default(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
            self.params[name] = float(value)
            return float(value)
        return low

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        value = self._default(name)
        if isinstance(value, int) and low <= value <= high:
            self.params[name] = value
            return value
        return low


def default_params(algo: str, base: dict) -> dict:
    """The search space's parameters that reproduce the env's default settings (those it can express)."""
    probe = _DefaultsProbe(base)
    SPACES[algo](probe, base)
    return probe.params
