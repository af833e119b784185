"""Checkpoints that hold everything a run needs to continue, in one safetensors file written atomically.

Tensors (weights, optimizer moments, Q-tables, torch RNG state) go in as tensors; counters, numpy/python RNG
states and anything else JSON-able go in the file's metadata. Loading reads no pickle.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from deeprl.modelio import atomic_write_bytes, read_tensors, tensors_to_bytes

CHECKPOINT_FILE = "checkpoint.safetensors"


def save_checkpoint(run_dir: Path, tensors: dict, state: dict) -> Path:
    path = Path(run_dir) / CHECKPOINT_FILE
    atomic_write_bytes(path, tensors_to_bytes(tensors, metadata={"state": json.dumps(state)}))
    return path


def load_checkpoint(run_dir: Path) -> tuple[dict[str, np.ndarray], dict] | None:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    tensors, meta = read_tensors(path)
    return tensors, json.loads(meta.get("state", "{}"))


def rng_state(np_rng: np.random.Generator | None = None) -> tuple[dict, dict]:
    """(tensors, json) capturing python, numpy and torch RNGs."""
    tensors, state = {}, {"python_random": _py_state_to_json(random.getstate())}
    if np_rng is not None:
        state["numpy_generator"] = np_rng.bit_generator.state
    try:
        import torch

        tensors["rng.torch"] = torch.get_rng_state()
    except ImportError:
        pass
    return tensors, state


def set_rng_state(tensors: dict, state: dict, np_rng: np.random.Generator | None = None) -> None:
    if "python_random" in state:
        v, internal, gauss = state["python_random"]
        random.setstate((v, tuple(internal), gauss))
    if np_rng is not None and "numpy_generator" in state:
        np_rng.bit_generator.state = state["numpy_generator"]
    if "rng.torch" in tensors:
        import torch

        torch.set_rng_state(torch.from_numpy(np.asarray(tensors["rng.torch"], dtype=np.uint8)))


def _py_state_to_json(st):
    v, internal, gauss = st
    return [v, list(internal), gauss]
