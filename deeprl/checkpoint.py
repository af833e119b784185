"""Checkpoints that hold everything a run needs to continue, in one safetensors file written atomically.

Tensors (weights, optimizer moments, Q-tables, torch RNG state) go in as tensors; counters, numpy/python RNG
states and anything else JSON-able go in the file's metadata. Loading reads no pickle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deeprl.modelio import read_tensors

CHECKPOINT_FILE = "checkpoint.safetensors"


def save_checkpoint(run_dir: Path, tensors: dict, state: dict) -> Path:
    """Streamed from the tensors into the file (no serialised copy in memory: beside a full replay buffer that
    copy was the run's peak), written atomically."""
    from deeprl.buffers import write_arrays

    path = Path(run_dir) / CHECKPOINT_FILE
    arrays = {k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v) for k, v in tensors.items()}
    write_arrays(path, arrays, {"state": json.dumps(state)})
    return path


def load_checkpoint(run_dir: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    tensors, meta = read_tensors(path)
    return tensors, json.loads(meta.get("state", "{}"))


def rng_state(np_rng: np.random.Generator | None = None, torch_rng: bool = True) -> tuple[dict, dict]:
    """(tensors, json) capturing python, numpy and torch RNGs; `torch_rng=False` (a numpy-only algorithm) leaves
    torch's out, and torch unimported."""
    tensors: dict = {}
    state: dict[str, Any] = {"python_random": _py_state_to_json(random.getstate())}
    if np_rng is not None:
        state["numpy_generator"] = np_rng.bit_generator.state
    if not torch_rng:
        return tensors, state
    try:
        import torch

        tensors["rng.torch"] = torch.get_rng_state()
    except ImportError:
        pass
    return tensors, state


def set_rng_state(
    tensors: dict, state: dict, np_rng: np.random.Generator | None = None, torch_rng: bool = True
) -> None:
    """Put back what rng_state captured; `torch_rng=False` ignores a torch state (an older numpy-only checkpoint
    holds one that nothing would use)."""
    if "python_random" in state:
        v, internal, gauss = state["python_random"]
        random.setstate((v, tuple(internal), gauss))
    if np_rng is not None and "numpy_generator" in state:
        np_rng.bit_generator.state = state["numpy_generator"]
    if torch_rng and "rng.torch" in tensors:
        import torch

        torch.set_rng_state(torch.from_numpy(np.asarray(tensors["rng.torch"], dtype=np.uint8)))


class StatefulOptimizer(Protocol):
    """What a checkpoint reads and writes of an optimizer: torch.optim's state-dict pair (deeprl.nets.Adam's too)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def _py_state_to_json(st: tuple) -> list:
    v, internal, gauss = st
    return [v, list(internal), gauss]


def optimizer_to_tensors(opt: StatefulOptimizer, prefix: str = "optim") -> tuple[dict, dict]:
    """(tensors, json) holding a torch optimizer's whole state: moments and step counts as tensors named
    `{prefix}.{param index}.{key}`, hyperparameter groups (learning rate, betas...) as JSON."""
    import torch

    sd = opt.state_dict()
    tensors, per_param = {}, {}
    for pid, entry in sd["state"].items():
        plain = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{pid}.{key}"] = value.detach().cpu().clone()
            else:
                plain[key] = value
        per_param[str(pid)] = plain
    return tensors, {"param_groups": sd["param_groups"], "state": per_param}


def optimizer_from_tensors(opt: StatefulOptimizer, tensors: dict, state: dict, prefix: str = "optim") -> None:
    """Load what optimizer_to_tensors saved back into `opt` (built over the same parameters)."""
    import torch

    full: dict = {}
    for pid, plain in state["state"].items():
        full[int(pid)] = dict(plain)
    head = f"{prefix}."
    for name, value in tensors.items():
        if not name.startswith(head):
            continue
        pid, key = name[len(head) :].split(".", 1)
        full.setdefault(int(pid), {})[key] = torch.as_tensor(np.array(value))
    groups = [dict(g) for g in state["param_groups"]]
    for g in groups:  # JSON turned tuples (Adam's betas) into lists
        for k, v in g.items():
            if k != "params" and isinstance(v, list):
                g[k] = tuple(v)
    opt.load_state_dict({"state": full, "param_groups": groups})
