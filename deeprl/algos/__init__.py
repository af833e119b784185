"""One module per algorithm. Each module provides:

- `Settings`: a dataclass of every hyperparameter it accepts, with its default and a `:param` line (course values
  come from hyperparams/*.yml), and `DEFAULTS = deeprl.settings.defaults(Settings)`, the same as a dict;
- `train(run)`: trains inside a `deeprl.train.Run` (env id, hyperparameters, seed, run folder): `run.settings(Settings)`
  gives the typed settings, and `with run.loop(...) as loop:` the frame (progress, callbacks, checkpoints, stopping,
  the final save; deeprl.loop), inside which the algorithm writes only its own steps;
- `load_agent(config, tensors)`: an object with `act(obs, deterministic=True)` built from a saved model;
- `USES_TORCH = False` (optional, default True): a numpy-only algorithm; `deeprl train` then neither imports nor
  seeds torch, and its checkpoints hold no torch random state.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from deeprl.errors import UserError, closest

ALGOS: dict[str, str] = {
    "qlearning": "deeprl.algos.qlearning",
    "reinforce": "deeprl.algos.reinforce",
    "ppo": "deeprl.algos.ppo",
    "a2c": "deeprl.algos.a2c",
    "dqn": "deeprl.algos.dqn",
    "selfplay": "deeprl.algos.selfplay",
    "appo": "deeprl.algos.appo",
    "bc": "deeprl.algos.bc",
    "gail": "deeprl.algos.gail",
    "dt": "deeprl.algos.dt",
}


def available() -> list[str]:
    return [name for name, mod in ALGOS.items() if importlib.util.find_spec(mod) is not None]


def get_algo(name: str) -> ModuleType:
    key = name.lower().replace("-", "").replace("_", "")
    key = {"q": "qlearning", "ql": "qlearning"}.get(key, key)
    if key not in ALGOS or importlib.util.find_spec(ALGOS[key]) is None:
        hints = closest(name, available())
        hint = f" Did you mean {' or '.join(hints)}?" if hints else ""
        raise UserError(f"Unknown algorithm '{name}'.{hint} Available: {', '.join(available())}.")
    return importlib.import_module(ALGOS[key])
