"""ML-Agents trainer files (`mlagents-learn config.yaml`), read as written and mapped onto deeprl's PPO.

The course trains Unit 5 with ML-Agents' YAML (`SnowballTarget.yaml`, `PyramidsRND.yaml`):

    behaviors:
      <behavior name>:
        trainer_type: ppo
        hyperparameters: {batch_size, buffer_size, learning_rate, learning_rate_schedule, beta, epsilon, lambd,
                          num_epoch, beta_schedule, epsilon_schedule}
        network_settings: {normalize, hidden_units, num_layers, vis_encode_type}
        reward_signals: {extrinsic: {gamma, strength}, rnd: {...}, curiosity: {...}}
        max_steps, time_horizon, summary_freq, keep_checkpoints, checkpoint_interval, threaded

Each key becomes the PPO setting with its meaning (ML-Agents' docs, `docs/Training-Configuration-File.md`):

- buffer_size, the experiences collected before an update, is n_envs x n_steps; time_horizon, the length of a
  trajectory piece after which ML-Agents bootstraps from the value estimate, is n_steps (each env's rollout is
  cut there and bootstrapped), so n_envs = buffer_size / time_horizon (rounded, at least 1);
- batch_size = batch_size; num_epoch = n_epochs; lambd = gae_lambda; beta (the entropy regularization) =
  ent_coef; epsilon = clip_range, and clip_range_vf too (ML-Agents clips the value update by the same epsilon);
- learning_rate with learning_rate_schedule linear (ML-Agents' default for PPO) = lin_<rate>, constant = <rate>.
  beta and epsilon follow beta_schedule and epsilon_schedule, which default to learning_rate_schedule (ML-Agents'
  `settings.py`): linear = lin_<beta> and lin_<epsilon>, decayed over max_steps as ML-Agents does (`DecayedValue`).
  ML-Agents' optimizer stops epsilon at 0.1 and beta at 1e-5; `lin_0.2_0.1` and `lin_0.01_1e-05` do that (give them
  with --hyperparams), but the mapping decays to 0, as the learning rate does: with the floors, PPO+RND (paper
  variant) learned Pyramids worse here (1M steps, `deeprl evaluate`: seed 0 1.31 against 1.37, seed 1 0.93 against
  1.74; with the floors alone and advantages per minibatch, seed 1 stayed near 0; again in the scene whose PyBullet
  steps in parts, over 128 sampled episodes: seed 0 0.91 against 1.20, seed 1 1.08 against 1.48);
- ML-Agents normalizes the advantages once over the whole buffer before its epochs (`advantage_scope: rollout`),
  where SB3 normalizes each minibatch;
- ML-Agents' optimizer steps without clipping the gradient; the mapping keeps PPO's max_grad_norm 0.5: without the
  clip (`--hyperparams max_grad_norm:0`), Pyramids (PPO+RND, paper variant, 1M steps, seeds 0-5, 128 sampled
  episodes) averaged the same 0.95, with another seed failing (benchmarks/results/pyramids.md);
- hidden_units x num_layers = policy_kwargs net_arch with relu trunks. ML-Agents uses Swish (`activation_fn:
  swish` here); measured with seed 0 on the course's files, relu learned Pyramids far faster (PPO+RND, paper
  variant, 1M steps: training return 1.44 at 800k against 0.60 with Swish) and both pass SnowballTarget (27.2
  relu, 35.3 Swish, goal 20), so relu is the mapping; normalize = observation normalization (VecNormalize's
  norm_obs, no reward normalization);
- reward_signals: the extrinsic signal's gamma = gamma, its strength scales the env reward; rnd and curiosity go to
  PPO's reward_signals setting (deeprl.rewards) with their strength, gamma, learning_rate and network size;
- max_steps = n_timesteps; checkpoint_interval (steps) = checkpoint_every (updates); summary_freq (steps) =
  log_interval (updates);
- accepted and ignored, said once: keep_checkpoints (a run keeps its latest checkpoint), threaded (how ML-Agents
  overlaps its updates with Unity), vis_encode_type (the Unit 5 observations are vectors).

Anything else is refused with one sentence naming the key, so a file never trains with a setting silently lost.
"""

from __future__ import annotations

from typing import Any

from deeprl.errors import UserError, closest

TOP = {"behaviors"}
BEHAVIOR = {
    "trainer_type",
    "hyperparameters",
    "network_settings",
    "reward_signals",
    "max_steps",
    "time_horizon",
    "summary_freq",
    "keep_checkpoints",
    "checkpoint_interval",
    "threaded",
}
HYPER = {
    "batch_size",
    "buffer_size",
    "learning_rate",
    "learning_rate_schedule",
    "beta_schedule",
    "epsilon_schedule",
    "beta",
    "epsilon",
    "lambd",
    "num_epoch",
}
NETWORK = {"normalize", "hidden_units", "num_layers", "vis_encode_type"}
SIGNALS = {
    "extrinsic": {"gamma", "strength"},
    "rnd": {"gamma", "strength", "learning_rate", "network_settings"},
    "curiosity": {"gamma", "strength", "learning_rate", "network_settings", "encoding_size"},
}
SIGNAL_NETWORK = {"hidden_units", "num_layers"}
IGNORED = ("keep_checkpoints", "threaded", "vis_encode_type")


def is_trainer_file(data: Any) -> bool:
    return isinstance(data, dict) and "behaviors" in data


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping of settings, not {value!r}.")
    return value


def _check_keys(section: dict, allowed: set, where: str) -> None:
    for key in section:
        if key not in allowed:
            hints = closest(str(key), allowed)
            hint = f" Did you mean {hints[0]}?" if hints else ""
            raise UserError(
                f"'{key}' in {where} is not an ML-Agents setting deeprl knows ({', '.join(sorted(allowed))}).{hint}"
            )


def _number(value: Any, where: str, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"{where} must be a number, not {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"{where} must be a number, not {value!r}.") from None
    if whole and (not number.is_integer() or number <= 0):
        raise UserError(f"{where} must be a positive whole number, not {value!r}.")
    return number


def _behavior(data: dict, env_id: str, tag: str, path: str) -> tuple[str, dict]:
    behaviors = _mapping(data["behaviors"], f"{path}'s behaviors")
    if not behaviors:
        raise UserError(f"{path} has no behavior under behaviors:.")
    for name in (env_id, tag, tag.removeprefix("ML-Agents-")):
        if name in behaviors:
            return name, _mapping(behaviors[name], f"behaviors.{name}")
    if len(behaviors) == 1:  # a file for one agent trains it whatever the behavior is called
        name = next(iter(behaviors))
        return name, _mapping(behaviors[name], f"behaviors.{name}")
    raise UserError(f"{path} has behaviors {', '.join(map(str, behaviors))} but none named {env_id}.")


def _signal_network(section: dict, where: str) -> list[int]:
    net = _mapping(section.get("network_settings", {}), f"{where}.network_settings")
    _check_keys(net, SIGNAL_NETWORK, f"{where}.network_settings")
    units = int(_number(net.get("hidden_units", 128), f"{where}.network_settings.hidden_units", whole=True))
    layers = int(_number(net.get("num_layers", 2), f"{where}.network_settings.num_layers", whole=True))
    return [units] * layers


def _schedule(hyper: dict, key: str, default: str, where: str) -> str:
    sched = hyper.get(key, default)
    if sched not in ("linear", "constant"):
        raise UserError(f"{where}.hyperparameters.{key} must be linear or constant, not {sched!r}.")
    return str(sched)


def read_trainer_config(data: dict, env_id: str, tag: str, path: str) -> dict:
    """PPO hyperparameters (RL-Zoo names, as hyperparams/ppo.yml writes them) from an ML-Agents trainer file."""
    from deeprl.log import note

    _check_keys(data, TOP, path)
    name, b = _behavior(data, env_id, tag, path)
    where = f"behaviors.{name}"
    _check_keys(b, BEHAVIOR, where)
    trainer = b.get("trainer_type", "ppo")
    if trainer != "ppo":
        raise UserError(
            f"{where}.trainer_type is {trainer!r}; deeprl trains ML-Agents files with PPO (trainer_type: ppo)."
        )
    hyper = _mapping(b.get("hyperparameters", {}), f"{where}.hyperparameters")
    _check_keys(hyper, HYPER, f"{where}.hyperparameters")
    net = _mapping(b.get("network_settings", {}), f"{where}.network_settings")
    _check_keys(net, NETWORK, f"{where}.network_settings")
    signals = _mapping(b.get("reward_signals", {"extrinsic": {}}), f"{where}.reward_signals")
    _check_keys(signals, set(SIGNALS), f"{where}.reward_signals")

    # ML-Agents' defaults where the file leaves a key out (mlagents/trainers/settings.py)
    horizon = int(_number(b.get("time_horizon", 64), f"{where}.time_horizon", whole=True))
    buffer = int(_number(hyper.get("buffer_size", 10240), f"{where}.hyperparameters.buffer_size", whole=True))
    hp: dict[str, Any] = {"n_steps": horizon, "n_envs": max(1, round(buffer / horizon))}
    hp["batch_size"] = int(_number(hyper.get("batch_size", 1024), f"{where}.hyperparameters.batch_size", whole=True))
    hp["n_epochs"] = int(_number(hyper.get("num_epoch", 3), f"{where}.hyperparameters.num_epoch", whole=True))
    lr = _number(hyper.get("learning_rate", 3e-4), f"{where}.hyperparameters.learning_rate")
    sched = _schedule(hyper, "learning_rate_schedule", "linear", where)
    hp["learning_rate"] = f"lin_{lr!r}" if sched == "linear" else lr
    # beta and epsilon decay on their own schedules, which default to the learning rate's (settings.py)
    beta = _number(hyper.get("beta", 5e-3), f"{where}.hyperparameters.beta")
    linear_beta = _schedule(hyper, "beta_schedule", sched, where) == "linear"
    hp["ent_coef"] = f"lin_{beta!r}" if linear_beta else beta
    epsilon = _number(hyper.get("epsilon", 0.2), f"{where}.hyperparameters.epsilon")
    linear_eps = _schedule(hyper, "epsilon_schedule", sched, where) == "linear"
    hp["clip_range"] = hp["clip_range_vf"] = f"lin_{epsilon!r}" if linear_eps else epsilon
    hp["advantage_scope"] = "rollout"
    hp["gae_lambda"] = _number(hyper.get("lambd", 0.95), f"{where}.hyperparameters.lambd")
    hp["vf_coef"] = 0.5  # ML-Agents' loss: policy + 0.5 * value - beta * entropy
    units = int(_number(net.get("hidden_units", 128), f"{where}.network_settings.hidden_units", whole=True))
    layers = int(_number(net.get("num_layers", 2), f"{where}.network_settings.num_layers", whole=True))
    hp["policy_kwargs"] = {"net_arch": [units] * layers, "activation_fn": "relu"}
    normalize = net.get("normalize", False)
    if not isinstance(normalize, bool):
        raise UserError(f"{where}.network_settings.normalize must be true or false, not {normalize!r}.")
    if normalize:
        hp["normalize"] = {"norm_obs": True, "norm_reward": False}
    hp["n_timesteps"] = int(_number(b.get("max_steps", 500000), f"{where}.max_steps", whole=True))
    steps_per_update = hp["n_envs"] * horizon
    if "checkpoint_interval" in b:
        every = _number(b["checkpoint_interval"], f"{where}.checkpoint_interval", whole=True)
        hp["checkpoint_every"] = max(1, round(every / steps_per_update))
    if "summary_freq" in b:
        hp["log_interval"] = max(
            1, round(_number(b["summary_freq"], f"{where}.summary_freq", whole=True) / steps_per_update)
        )

    extra: dict[str, dict] = {}
    for kind, section in signals.items():
        section = _mapping(section if section is not None else {}, f"{where}.reward_signals.{kind}")
        _check_keys(section, SIGNALS[kind], f"{where}.reward_signals.{kind}")
        gamma = _number(section.get("gamma", 0.99), f"{where}.reward_signals.{kind}.gamma")
        strength = _number(section.get("strength", 1.0), f"{where}.reward_signals.{kind}.strength")
        if kind == "extrinsic":
            hp["gamma"] = gamma
            if strength != 1.0:
                extra["extrinsic"] = {"strength": strength}
            continue
        sig: dict[str, Any] = {"strength": strength, "gamma": gamma}
        default_lr = 1e-4 if kind == "rnd" else 3e-4  # RNDSettings / CuriositySettings
        sig["learning_rate"] = _number(
            section.get("learning_rate", default_lr), f"{where}.reward_signals.{kind}.learning_rate"
        )
        sig["net_arch"] = _signal_network(section, f"{where}.reward_signals.{kind}")
        if "encoding_size" in section:
            sig["encoding_size"] = int(
                _number(section["encoding_size"], f"{where}.reward_signals.{kind}.encoding_size", whole=True)
            )
        extra[kind] = sig
    if "extrinsic" not in signals:
        extra["extrinsic"] = {"strength": 0.0}  # a file may train on intrinsic rewards alone
    if extra:
        hp["reward_signals"] = extra
    ignored = sorted(k for k in IGNORED if k in b or k in net)
    if ignored:
        note(f"deeprl decides {', '.join(ignored)} itself; those ML-Agents keys are ignored.")
    return hp
