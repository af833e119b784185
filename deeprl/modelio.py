"""The saved model: `model.safetensors` (every weight, Q-tables included) beside `config.json`.

Loading never unpickles or executes anything; every way a file can be wrong becomes one UserError sentence.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from deeprl.errors import UserError
from deeprl.version import __version__

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces `path` only when the block ends without error (write to a
    temporary file in the same folder, fsync, rename): readers see the old or the new file whole, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno == 28:
            raise UserError(f"The disk is full: could not write {path}; the previous file is unchanged.") from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def to_numpy(tensors: dict) -> dict[str, np.ndarray]:
    out = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):  # torch tensor
            v = v.detach().cpu().contiguous().numpy()
        v = np.asarray(v)
        # np.ascontiguousarray turns a 0-d array into shape (1,); scalars (counts) must keep their shape
        out[k] = v if v.flags.c_contiguous else np.ascontiguousarray(v)
    return out


def tensors_to_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.numpy import save

    return save(to_numpy(tensors), metadata=metadata)


def save_model(directory: Path, tensors: dict, config: dict) -> None:
    directory = Path(directory)
    config = {**config, "deeprl_version": __version__}
    atomic_write_bytes(directory / MODEL_FILE, tensors_to_bytes(tensors))
    atomic_write_json(directory / CONFIG_FILE, config)


def read_config(directory: Path) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"{path} is missing: a model folder needs config.json beside model.safetensors.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc.__class__.__name__}); the model folder is damaged.") from None
    if not isinstance(config, dict):
        raise UserError(f"{path} must hold a JSON object.")
    for key in ("algo", "env_id"):
        if not isinstance(config.get(key), str):
            raise UserError(f"{path} has no '{key}' entry; the model folder is damaged or not a deeprl model.")
    if not isinstance(config.get("env_kwargs", {}), dict):
        raise UserError(f"{path}: 'env_kwargs' must be an object.")
    return config


def read_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a corrupt, truncated or non-finite file is a UserError."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} is missing.")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises several types for bad headers and short files
        raise UserError(f"{path} is not a readable safetensors file (corrupt or truncated: {exc}).") from None
    for k, v in tensors.items():
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise UserError(f"{path} holds NaN or infinite values in '{k}'; the model is unusable.")
    return tensors, meta


def load_model(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    directory = Path(directory)
    config = read_config(directory)
    check_weights(config, read_header(directory / MODEL_FILE))
    tensors, _ = read_tensors(directory / MODEL_FILE)
    return config, tensors


# ---------------------------------------------------------------------------------------------------------
# Checks made on the safetensors header before anything is allocated

MAX_MODEL_BYTES = 512 << 20  # the course's largest model (Space Invaders' Nature CNN) is 6.5 MB
MAX_HEADER_BYTES = 1 << 20
MAX_TENSORS = 1_000
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
NET_KEYS = {
    "net_arch",
    "hidden_sizes",
    "hidden_units",
    "hidden",
    "h_size",
    "hidden_size",
    "pi",
    "vf",
    "qf",
    "features_dim",
    "mlp_layers",  # APPO's recurrent actor-critic (deeprl.policies.recurrent): its MLP encoder and its GRU
    "rnn_size",
}


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{name: (dtype, shape)} from a safetensors file's header, read without loading a weight.

    The format is 8 bytes of little-endian header length, then that much JSON; every bound is checked first, so a
    file that declares a 100 GB tensor or a 1 GB header costs a few bytes of reading.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise UserError(
                f"{path.name} is {size / 2**20:.0f} MiB, over the {MAX_MODEL_BYTES >> 20} MiB a deeprl model may have."
            )
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise UserError(f"{path.name} is not a readable safetensors file (bad header length).")
            header = json.loads(fh.read(n))
    except FileNotFoundError:
        raise UserError(f"{path} is missing.") from None
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise UserError(f"{path.name} is not a readable safetensors file (its header is not JSON).") from None
    if not isinstance(header, dict) or len(header) > MAX_TENSORS + 1:
        raise UserError(f"{path.name} is not a readable safetensors file (its header is not a table of tensors).")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("dtype"), str)
            or not isinstance(info.get("shape"), list)
            or not all(isinstance(d, int) and 0 <= d < 2**40 for d in info["shape"])
            or len(info["shape"]) > 8
        ):
            raise UserError(f"{path.name} describes tensor '{str(name)[:60]}' in a way safetensors does not.")
        out[str(name)] = (info["dtype"], tuple(info["shape"]))
    return out


def _declared_sizes(value: Any, key: str | None = None, depth: int = 0) -> list[int]:
    """Every layer width config.json declares under a network key (net_arch, hidden_sizes, pi, vf...)."""
    if depth > 8:
        return []
    if isinstance(value, dict):
        return [n for k, v in list(value.items())[:200] for n in _declared_sizes(v, str(k), depth + 1)]
    if isinstance(value, list):
        return [n for v in value[:200] for n in _declared_sizes(v, key, depth + 1)]
    if key in NET_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return []


def check_weights(config: dict, header: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """Refuse, before any network is built, weights of a dtype deeprl never writes and a config.json whose network
    does not match them: a doctored `net_arch: [6000, 6000]` would otherwise allocate a GB to find out."""
    for name, (dtype, _shape) in header.items():
        if dtype not in FLOAT_DTYPES:
            raise UserError(f"The weights '{name[:60]}' are {dtype}; deeprl models hold floating-point weights only.")
    dims = {d for _, shape in header.values() for d in shape}
    widest = max(dims, default=0)
    for n in _declared_sizes(config.get("policy")) + _declared_sizes(config.get("hyperparams")):
        if n == 0:  # a width of 0 is "none" (rnn_size: 0 is no GRU): nothing is built
            continue
        if n < 0 or n > widest or n not in dims:
            raise UserError(
                f"config.json declares a layer of {n} units, but no weight in {MODEL_FILE} has that "
                "size; the model folder is damaged or doctored."
            )


def check_shape(name: str, array: np.ndarray, expected: tuple, what: str) -> None:
    if tuple(array.shape) != tuple(expected):
        raise UserError(
            f"The weights '{name}' have shape {tuple(array.shape)} but {what} needs {tuple(expected)}; "
            "the model does not fit this environment."
        )


def finite(x: float) -> float:
    return x if math.isfinite(x) else float("nan")
