"""The course's own model files (`q-learning.pkl` from the Unit 2 notebook), read without running them.

A pickle is a program. This unpickler admits only what a course model dict holds: plain containers, numbers,
strings and numpy arrays. Any other global (os.system, builtins.eval, subprocess...) is refused before it runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeprl.errors import UserError

if TYPE_CHECKING:
    from deeprl.algos.qlearning import QTableAgent


def _numpy_globals() -> dict:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]  # the same modules, numpy 1's place
    import _codecs

    allowed = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5 rebuilds arrays from raw buffers
        allowed[(mod, "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]  # private: not in the stubs
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1'): a pure function, harmless.
    allowed[("_codecs", "encode")] = _codecs.encode
    return allowed


class Refused(pickle.UnpicklingError):
    """A global the file asked for that is not on the allow list."""


class RestrictedUnpickler(pickle.Unpickler):
    _allowed: dict | None = None

    def find_class(self, module: str, name: str) -> Any:
        allowed = RestrictedUnpickler._allowed
        if allowed is None:
            allowed = RestrictedUnpickler._allowed = _numpy_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise Refused(f"{module}.{name}") from None


def safe_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_course_pickle(path: Path) -> QTableAgent:
    """A course model dict -> a Q-table agent (env id, map and slipperiness taken from the dict)."""
    try:
        model = safe_loads(Path(path).read_bytes())
    except Refused as exc:
        raise UserError(
            f"{path} asks to run '{exc}' when loaded; refused (only plain data and numpy arrays "
            "are read from course files)."
        ) from None
    except Exception as exc:
        raise UserError(f"{path} is not a readable course model file ({exc.__class__.__name__}).") from None
    if not isinstance(model, dict) or "qtable" not in model or "env_id" not in model:
        raise UserError(f"{path} is not a course Q-Learning model (a dict with 'env_id' and 'qtable').")
    env_kwargs = {}
    if str(model["env_id"]).startswith("FrozenLake"):
        env_kwargs = {"map_name": model.get("map_name", "4x4"), "is_slippery": bool(model.get("slippery", False))}
    from deeprl.algos.qlearning import load_agent

    q = np.asarray(model["qtable"], dtype=np.float64)
    config = {
        "algo": "qlearning",
        "env_id": str(model["env_id"]),
        "env_kwargs": env_kwargs,
        "source": "course-pickle",
        "hyperparams": {
            k: v
            for k, v in model.items()
            if k not in ("qtable", "eval_seed") and isinstance(v, (int, float, str, bool))
        },
    }
    if not np.isfinite(q).all():
        raise UserError(f"{path} holds NaN or infinite Q-values; the model is unusable.")
    agent = load_agent(config, {"qtable": q})
    agent.source = str(path)
    return agent
