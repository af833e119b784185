"""Stable-Baselines3 model files (`ppo-LunarLander-v2.zip`), read without running any of their code.

An SB3 `.zip` holds `data` (JSON), `policy.pth` (the weights, a torch pickle) and optimizer state. SB3 itself
loads `data` by unpickling its `:serialized:` entries (cloudpickle: the policy class, the spaces, schedules) and
`policy.pth` with torch.load; either can run any code a file's author chose. Here:

- `data` is parsed as JSON and only its plain fields are read (numbers, strings, and the readable fields SB3 writes
  beside each serialized object: a space's `_shape`, `dtype`, `n`); a `:serialized:` entry is never decoded;
- `policy.pth` goes through `torch.load(weights_only=True)` (tensors and plain containers only), after a size check
  that reads at most the limit, whatever the zip's header claims;
- the algorithm is told from the weights' names (`q_net.*`: DQN; `action_net`/`value_net`: PPO, or A2C when the
  data has no PPO fields), the architecture from the weights' shapes, the activation from policy_kwargs' text;
- the SB3 names map onto ours: `mlp_extractor.policy_net.N` -> `policy.pi_trunk.N`, `mlp_extractor.value_net.N` ->
  `policy.vf_trunk.N`, `action_net` / `value_net` -> `policy.action_head` / `policy.value_head`, `log_std`,
  NatureCNN's `features_extractor.cnn.N` / `.linear.0` -> `policy.features.cnn.conv.N` / `.fc.0` (CnnPolicy; a
  MultiInputPolicy over vectors has no extractor weights, one over images is refused); DQN's `q_net.q_net.N` ->
  `q.body.N`, its last layer -> `q.q` (the target network is dropped);
- a `vec_normalize.pkl` beside the file (a Hub repo) or in RL-Zoo's `<env>_N/<env>/` goes through an unpickler that
  admits VecNormalize, RunningMeanStd, spaces and numpy's generator only as inert records (their fields copied
  out, none of their code run) plus numpy arrays and plain data; any other class refuses the file;
- the env comes from `--env`, else the file's or folder's name (`ppo-LunarLander-v2.zip`, RL-Zoo's
  `ppo/LunarLander-v2_1/`), else a model card beside it, else the one course env whose spaces fit; it is always
  checked against the spaces the file records.

Every way a file can be wrong or unsupported is one UserError sentence.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeprl.errors import UserError
from deeprl.log import note

MAX_ZIP_BYTES = 1 << 30  # the .zip file itself
MAX_DATA_BYTES = 16 << 20  # `data` (JSON, uncompressed)
MAX_POLICY_BYTES = 64 << 20  # `policy.pth` uncompressed: the course's largest (Atari DQN with its target) is ~13 MB
MAX_ENTRIES = 64
ALGOS = ("ppo", "a2c", "dqn")
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "ELU": "elu"}


@dataclass
class SB3Model:
    """What a zip holds, as plain data: the algorithm, the policy kind, the spaces, the weights (numpy)."""

    path: Path
    algo: str  # ppo, a2c, dqn
    policy: str  # MlpPolicy, CnnPolicy, MultiInputPolicy
    data: dict  # the plain fields of `data` (serialized entries reduced to their readable fields)
    weights: dict[str, np.ndarray]
    obs_space: dict  # {"type": "Box", "shape": [...], "dtype": "float32"}, {"type": "Discrete", "n": 4}, ...
    action_space: dict
    sb3_version: str | None = None
    activation: str = "tanh"
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# Reading the zip


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, path: Path) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise UserError(
            f"{path}: its {name} ({info.file_size:,} bytes) is over the {limit / 2**20:g} MiB limit for an SB3 "
            "model file; it is refused unread."
        )
    with zf.open(info) as fh:
        raw = fh.read(limit + 1)  # the header may lie: never more than the limit is inflated
    if len(raw) > limit:
        raise UserError(
            f"{path}: its {name} inflates past the {limit / 2**20:g} MiB limit for an SB3 model file; it is refused."
        )
    return raw


def plain(value: Any) -> Any:
    """`data`'s value with every serialized object reduced to its readable fields (the `:serialized:` cloudpickle
    text is dropped undecoded)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != ":serialized:"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def read_zip(path: str | Path) -> SB3Model:
    """Open an SB3 .zip safely (see the module doc) and describe what it holds."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist.")
    if path.stat().st_size > MAX_ZIP_BYTES:
        raise UserError(f"{path} is over {MAX_ZIP_BYTES >> 20} MiB; no SB3 course model is that large.")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if len(names) > MAX_ENTRIES:
                raise UserError(f"{path} holds {len(names)} files; an SB3 model file holds a handful.")
            if "data" not in names or "policy.pth" not in names:
                raise UserError(
                    f"{path} is not a Stable-Baselines3 model file, or is damaged "
                    "(it has no 'data' and 'policy.pth' inside)."
                )
            data_raw = _read_member(zf, "data", MAX_DATA_BYTES, path)
            policy_raw = _read_member(zf, "policy.pth", MAX_POLICY_BYTES, path)
            version = None
            if "_stable_baselines3_version" in names:
                version = _read_member(zf, "_stable_baselines3_version", 1024, path).decode("utf-8", "replace").strip()
    except zipfile.BadZipFile as exc:
        raise UserError(f"{path} is not a readable zip file ({exc}); the download may be damaged.") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, RuntimeError, ValueError) as exc:
        # a damaged member (CRC, truncated stream), an encrypted or unknown compression
        raise UserError(f"{path} could not be read as an SB3 model file ({exc.__class__.__name__}: {exc}).") from None
    except OSError as exc:
        if exc.errno is None:  # zlib's "Error -3 while decompressing": a damaged member
            raise UserError(f"{path} is damaged ({exc}); the download may be incomplete.") from None
        raise
    try:
        data = json.loads(data_raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: its 'data' is not JSON ({exc.__class__.__name__}); it is not an SB3 model.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: its 'data' is not a JSON object; it is not an SB3 model.")
    weights = _load_weights(policy_raw, path)
    return describe(path, plain(data), weights, version)


def _load_weights(raw: bytes, path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"{path}: its policy.pth is not a plain tensor file that loads safely ({exc.__class__.__name__}: {first})."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise UserError(f"{path}: its policy.pth is not a mapping of names to tensors.")
    out = {}
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise UserError(f"{path}: the weight {k} holds NaN or infinite values; the model is damaged.")
        out[k] = v.detach().cpu().numpy()
    return out


# ----------------------------------------------------------------------------------------------------------
# What the zip holds


def _space(value: Any) -> dict:
    """A space described from SB3's readable fields (`:type:`, `_shape`, `dtype`, `n`, `nvec`)."""
    if not isinstance(value, dict):
        return {"type": "unknown"}
    match = re.search(r"\.(\w+)'>$", str(value.get(":type:", "")))
    kind = match.group(1) if match else "unknown"
    out: dict[str, Any] = {"type": kind}
    if kind == "Discrete":
        try:
            out["n"] = int(str(value.get("n")))
        except ValueError:
            out["n"] = None
    elif kind == "MultiDiscrete":
        out["nvec"] = [int(x) for x in re.findall(r"\d+", str(value.get("nvec", "")))]
    if isinstance(value.get("_shape"), list):
        out["shape"] = [int(x) for x in value["_shape"] if isinstance(x, int)]
    if isinstance(value.get("dtype"), str):
        out["dtype"] = value["dtype"]
    return out


def _layers(weights: dict[str, np.ndarray], prefix: str) -> list[int]:
    """Indices of a Sequential's Linear layers under `prefix` (prefix.0.weight, prefix.2.weight, ...)."""
    found = sorted(
        int(m.group(1)) for k in weights if (m := re.fullmatch(re.escape(prefix) + r"\.(\d+)\.weight", k)) is not None
    )
    if found != list(range(0, 2 * len(found), 2)):
        raise UserError(f"the SB3 layers under {prefix} are not Linear/activation pairs ({found}); not supported.")
    return found


def describe(path: Path, data: dict, weights: dict[str, np.ndarray], version: str | None) -> SB3Model:
    """Tell the algorithm and policy kind from the weights' names and the data's plain fields; refuse the rest."""
    keys = set(weights)
    if any(k.startswith(("actor.", "critic.")) for k in keys):
        raise UserError(f"{path} is an SB3 SAC/TD3/DDPG model; deeprl reads PPO, A2C and DQN models.")
    if any(k.startswith(("lstm_actor.", "lstm_critic.")) for k in keys):
        raise UserError(f"{path} is an sb3-contrib RecurrentPPO model; deeprl reads PPO, A2C and DQN models.")
    if any(k.startswith("quantile_net.") for k in keys):
        raise UserError(f"{path} is an sb3-contrib QR-DQN model; deeprl reads PPO, A2C and DQN models.")
    if any(k.startswith("q_net.") for k in keys):
        algo = "dqn"
    elif "action_net.weight" in keys and "value_net.weight" in keys:
        if "cg_max_steps" in data:
            raise UserError(f"{path} is an sb3-contrib TRPO model; deeprl reads PPO, A2C and DQN models.")
        algo = "ppo" if ("clip_range" in data or "n_epochs" in data) else "a2c"
    else:
        raise UserError(f"{path} holds weights of no SB3 algorithm deeprl reads (PPO, A2C, DQN).")
    if any(k.startswith("mlp_extractor.shared_net.") for k in keys):
        raise UserError(f"{path} has layers shared by policy and value (SB3 < 1.8's net_arch), which deeprl lacks.")
    if any(k.startswith(("pi_features_extractor.", "vf_features_extractor.")) for k in keys) and not any(
        k.startswith("features_extractor.") for k in keys
    ):
        raise UserError(f"{path} has separate policy and value feature extractors, which deeprl's policies lack.")
    if data.get("use_sde"):
        raise UserError(f"{path} was trained with gSDE (use_sde=True), which deeprl's policies do not implement.")
    obs_space, action_space = _space(data.get("observation_space")), _space(data.get("action_space"))
    prefix = "q_net." if algo == "dqn" else ""
    if any(k.startswith(prefix + "features_extractor.extractors.") for k in keys) or obs_space["type"] == "Dict":
        policy = "MultiInputPolicy"
    elif any(k.startswith(prefix + "features_extractor.cnn.") for k in keys):
        policy = "CnnPolicy"
    elif any(".features_extractor." in f".{k}" for k in keys):
        raise UserError(f"{path} uses a custom features extractor, which deeprl cannot rebuild.")
    else:
        policy = "MlpPolicy"
    found = data.get("policy_kwargs")
    kwargs: dict = found if isinstance(found, dict) else {}
    act_text = str(kwargs.get("activation_fn", ""))
    if act_text:
        name = re.search(r"\.(\w+)'>", act_text)
        activation = ACTIVATIONS.get(name.group(1)) if name else None
        if activation is None:
            raise UserError(f"{path}: its activation {act_text[:80]} is not one deeprl has (Tanh, ReLU, ELU).")
    else:
        activation = "relu" if algo == "dqn" else "tanh"  # SB3's defaults
    for flag in ("share_features_extractor", "normalize_images"):
        if kwargs.get(flag) is False and policy != "MlpPolicy":
            raise UserError(f"{path} sets {flag}=False, which deeprl's policies do not implement.")
    if kwargs.get("dueling") or kwargs.get("squash_output"):
        raise UserError(f"{path} uses policy options (dueling or squash_output) that deeprl cannot read from SB3.")
    return SB3Model(path, algo, policy, data, weights, obs_space, action_space, version, activation)


# ----------------------------------------------------------------------------------------------------------
# SB3 names -> ours


def _cnn(weights: dict[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    out = {}
    for i in (0, 2, 4):
        for p in ("weight", "bias"):
            out[f"{dst}.conv.{i}.{p}"] = weights[f"{src}.cnn.{i}.{p}"]
    for p in ("weight", "bias"):
        out[f"{dst}.fc.0.{p}"] = weights[f"{src}.linear.0.{p}"]
    return out


def _features(model: SB3Model, src: str, dst: str) -> dict[str, np.ndarray]:
    """The features extractor's weights (none for Flatten)."""
    w = model.weights
    if model.policy == "CnnPolicy":
        return _cnn(w, src, f"{dst}.cnn")
    if any(k.startswith(f"{src}.extractors.") for k in w):  # SB3's per-key CNN has 256 features, ours 512
        raise UserError(f"{model.path}: a MultiInputPolicy with image observations is not supported (vectors are).")
    return {}


def to_deeprl(model: SB3Model, env_id: str, env_kwargs: dict | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, tensors) in deeprl's model format for `model` playing `env_id`."""
    from deeprl.envs import env_tag

    w = model.weights
    tensors: dict[str, np.ndarray] = {}
    try:
        if model.algo == "dqn":
            body = _layers(w, "q_net.q_net")
            last = body[-1]
            for n, i in enumerate(body[:-1]):
                for p in ("weight", "bias"):
                    tensors[f"q.body.{2 * n}.{p}"] = w[f"q_net.q_net.{i}.{p}"]
            for p in ("weight", "bias"):
                tensors[f"q.q.{p}"] = w[f"q_net.q_net.{last}.{p}"]
            if model.policy == "CnnPolicy":
                if body != [0]:
                    raise UserError(f"{model.path}: a DQN CnnPolicy with hidden layers after the CNN is not supported.")
                tensors.update(_cnn(w, "q_net.features_extractor", "q.body"))
            elif model.policy != "MlpPolicy":
                raise UserError(
                    f"{model.path}: DQN with {model.policy} is not supported (MlpPolicy and CnnPolicy are)."
                )
            if model.policy == "MlpPolicy" and model.activation != "relu":
                raise UserError(f"{model.path}: deeprl's DQN network uses ReLU; this model uses {model.activation}.")
            shape = model.obs_space.get("shape") or []
            n_actions = model.action_space.get("n")
            if model.action_space["type"] != "Discrete" or not isinstance(n_actions, int):
                raise UserError(f"{model.path}: a DQN model needs Discrete actions; its action space is unreadable.")
            if model.obs_space["type"] != "Box":
                raise UserError(f"{model.path}: deeprl's DQN reads Box observations, not {model.obs_space['type']}.")
            policy: dict[str, Any] = {
                "kind": "cnn" if model.policy == "CnnPolicy" else "mlp",
                "obs_shape": list(shape),
                "n_actions": n_actions,
                "net_arch": [int(w[f"q_net.q_net.{i}.weight"].shape[0]) for i in body[:-1]],
                "dueling": False,
                "eval_eps": float(model.data.get("exploration_final_eps", 0.05)),
            }
        else:
            pi = _layers(w, "mlp_extractor.policy_net")
            vf = _layers(w, "mlp_extractor.value_net")
            for src, dst, idx in (("policy_net", "pi_trunk", pi), ("value_net", "vf_trunk", vf)):
                for i in idx:
                    for p in ("weight", "bias"):
                        tensors[f"policy.{dst}.{i}.{p}"] = w[f"mlp_extractor.{src}.{i}.{p}"]
            for src, dst in (("action_net", "action_head"), ("value_net", "value_head")):
                for p in ("weight", "bias"):
                    tensors[f"policy.{dst}.{p}"] = w[f"{src}.{p}"]
            if "log_std" in w:
                tensors["policy.log_std"] = w["log_std"]
            tensors.update(_features(model, "features_extractor", "policy.features"))
            policy = {
                "class": "ActorCritic",
                "net_arch": {
                    "pi": [int(w[f"mlp_extractor.policy_net.{i}.weight"].shape[0]) for i in pi],
                    "vf": [int(w[f"mlp_extractor.value_net.{i}.weight"].shape[0]) for i in vf],
                },
                "activation": model.activation,
                "ortho_init": True,
                "log_std_init": 0.0,
                "normalize": None,
                "observation_space": model.obs_space,
                "action_space": model.action_space,
            }
    except KeyError as exc:
        raise UserError(f"{model.path}: the weight {exc.args[0]} is missing; the SB3 file is incomplete.") from None
    hyperparams = {
        k: v
        for k, v in model.data.items()
        if isinstance(v, (int, float, bool, str))
        and not k.startswith("_")
        and k not in ("start_time", "verbose", "tensorboard_log", "num_timesteps", "seed")
    }
    config = {
        "algo": model.algo,
        "env_id": env_id,
        "env_kwargs": dict(env_kwargs or {}),
        "env_tag": env_tag(env_id, env_kwargs),
        "seed": model.data.get("seed") if isinstance(model.data.get("seed"), int) else 0,
        "hyperparams": {"policy": model.policy, **hyperparams},
        "policy": policy,
        "trained": {"timesteps": model.data.get("num_timesteps")},
        "source": {
            "format": "stable-baselines3",
            "file": model.path.name,
            "sb3_version": model.sb3_version,
            "policy": model.policy,
        },
    }
    return config, tensors


# ----------------------------------------------------------------------------------------------------------
# Which env


def _names(path: Path) -> list[str]:
    """Env ids a file's and its folder's names suggest: ppo-LunarLander-v2.zip, RL-Zoo's ppo/LunarLander-v2_1/."""
    return names_env(path.stem, path.parent.name)


def names_env(*names: str) -> list[str]:
    """Env ids names suggest, in order: the name itself, without RL-Zoo's run number, without an algorithm prefix
    (`ppo-LunarLander-v2` -> `LunarLander-v2`, the name the course gives a Hub repo and its zip)."""
    out = []
    for name in names:
        for candidate in (name, re.sub(r"_\d+$", "", name)):
            out.append(candidate)
            head, sep, rest = candidate.partition("-")
            if sep and head.lower() in (*ALGOS, "qrdqn", "sac", "td3", "trpo"):
                out.append(rest)
    return [c for c in dict.fromkeys(out) if c]


def _card_env(path: Path) -> str | None:
    """The env a Hub model card beside the file names (its model-index's dataset, as huggingface_sb3 writes it)."""
    import yaml

    card = path.parent / "README.md"
    try:
        if not card.is_file() or card.stat().st_size > 1 << 20:
            return None
        text = card.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not text.startswith("---"):
        return None
    try:
        meta = yaml.safe_load(text.split("---", 2)[1])
        dataset = meta["model-index"][0]["results"][0]["dataset"]
        name = dataset.get("name") or dataset.get("type")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def fits(model: SB3Model, env: Any) -> str | None:
    """None when the env's spaces are the model's, else what differs (one clause)."""
    from deeprl.policies.features import describe_space

    ours_obs, ours_act = describe_space(env.observation_space), describe_space(env.action_space)
    theirs_obs, theirs_act = model.obs_space, model.action_space
    for what, ours, theirs in (("observations", ours_obs, theirs_obs), ("actions", ours_act, theirs_act)):
        if theirs["type"] == "unknown":
            continue
        same = ours["type"] == theirs["type"]
        for key in ("shape", "n", "nvec"):
            if same and key in theirs and key in ours:
                same = list(np.ravel(ours[key])) == list(np.ravel(theirs[key]))
        if not same:
            return f"its {what} are {_show(theirs)} but the env's are {_show(ours)}"
    return None


def _show(space: dict) -> str:
    detail = space.get("n", space.get("nvec", space.get("shape", "")))
    return f"{space['type']}{tuple(detail) if isinstance(detail, list) else f'({detail})'}"


def resolve_env(model: SB3Model, env: str | None = None) -> str:
    """The course env id `model` plays: `env` if given, else from its names or card, else the one that fits."""
    from deeprl.envs import get_spec, list_specs, make_env

    def check(env_id: str, how: str) -> str:
        spec = get_spec(env_id)
        built = make_env(spec.course_id)
        try:
            why = fits(model, built)
        finally:
            built.close()
        if why:
            raise UserError(f"{model.path} does not play {spec.course_id} ({how}): {why}; give the env with --env.")
        return spec.course_id

    if env:
        return check(env, "given with --env")
    for name in [*_names(model.path), _card_env(model.path)]:
        if name:
            try:
                get_spec(name)
            except UserError:
                continue
            return check(name, f"from the name {name}")
    fitting = []
    for spec in list_specs():  # the envs that need no extra package, built only to compare spaces
        if spec.requires:
            continue
        built = spec.make(dict(spec.default_kwargs), None, False)  # quietly: make_env notes renamed ids
        try:
            if fits(model, built) is None:
                fitting.append(spec.course_id)
        finally:
            built.close()
    if len(fitting) == 1:
        note(f"{model.path.name} names no env; {fitting[0]} is the one course env with its spaces.")
        return fitting[0]
    which = f"{' and '.join(fitting)} all fit its spaces" if fitting else "no course env has its spaces"
    raise UserError(
        f"Cannot tell which env {model.path.name} was trained on (its name names none, {which}); give it with --env."
    )


# ----------------------------------------------------------------------------------------------------------
# vec_normalize.pkl (RL-Zoo folders, the course's Unit 6 repos): a pickle, read by an unpickler that builds nothing
# but inert records, plain data and numpy arrays

VEC_NORMALIZE = "vec_normalize.pkl"
MAX_VEC_NORMALIZE_BYTES = 16 << 20


class Record:
    """What an admitted class (VecNormalize, RunningMeanStd, a space, numpy's random generator) becomes: the
    arguments and state the pickle hands it, kept as data. None of the class's own code runs."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class VecNormalizeRecord(Record):
    pass


class RunningMeanStdRecord(Record):
    pass


def _record(*args: Any) -> Record:  # numpy.random's pickle constructors, called by REDUCE
    return Record(*args)


def _vec_normalize_globals() -> dict:
    from collections import OrderedDict

    from deeprl.coursefiles import _numpy_globals  # arrays, dtypes, scalars: what course pickles may hold

    allowed = dict(_numpy_globals())
    allowed[("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize")] = VecNormalizeRecord
    allowed[("stable_baselines3.common.running_mean_std", "RunningMeanStd")] = RunningMeanStdRecord
    for lib in ("gymnasium", "gym"):
        for mod, name in (
            ("box", "Box"),
            ("discrete", "Discrete"),
            ("dict", "Dict"),
            ("multi_discrete", "MultiDiscrete"),
        ):
            allowed[(f"{lib}.spaces.{mod}", name)] = Record
    for name in ("__generator_ctor", "__bit_generator_ctor", "__randomstate_ctor"):
        allowed[("numpy.random._pickle", name)] = _record
    allowed[("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence")] = _record
    for mod, name in (("numpy.random._pcg64", "PCG64"), ("numpy.random.bit_generator", "SeedSequence")):
        allowed[(mod, name)] = Record
    allowed[("numpy.random._generator", "Generator")] = Record
    allowed[("collections", "OrderedDict")] = OrderedDict
    return allowed


class VecNormalizeUnpickler(pickle.Unpickler):
    """Admits the globals of _vec_normalize_globals (inert records, numpy arrays) and refuses every other one."""

    _allowed: dict | None = None

    def find_class(self, module: str, name: str) -> Any:
        from deeprl.coursefiles import Refused

        allowed = VecNormalizeUnpickler._allowed
        if allowed is None:
            allowed = VecNormalizeUnpickler._allowed = _vec_normalize_globals()
        try:
            return allowed[(module, name)]
        except KeyError:
            raise Refused(f"{module}.{name}") from None


def read_vec_normalize(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(the Normalizer's settings, its statistics as `normalize.*` tensors) from an SB3 vec_normalize.pkl."""
    from deeprl.coursefiles import Refused

    if path.stat().st_size > MAX_VEC_NORMALIZE_BYTES:
        raise UserError(f"{path} is over {MAX_VEC_NORMALIZE_BYTES >> 20} MiB; a VecNormalize file is a few KB.")
    try:
        loaded = VecNormalizeUnpickler(io.BytesIO(path.read_bytes())).load()
    except Refused as exc:
        raise UserError(
            f"{path} asks to run '{exc}' when loaded; refused (only VecNormalize's statistics, as plain data, are "
            "read from it)."
        ) from None
    except Exception as exc:
        raise UserError(f"{path} is not a readable VecNormalize file ({exc.__class__.__name__}).") from None
    state = loaded.state if isinstance(loaded, VecNormalizeRecord) else None
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold an SB3 VecNormalize object.")
    settings = {
        "norm_obs": bool(state.get("norm_obs", True)),
        "norm_reward": bool(state.get("norm_reward", True)),
        "clip_obs": float(state.get("clip_obs", 10.0)),
        "clip_reward": float(state.get("clip_reward", 10.0)),
        "gamma": float(state.get("gamma", 0.99)),
        "epsilon": float(state.get("epsilon", 1e-8)),
    }
    tensors: dict[str, np.ndarray] = {}

    def stats(rms: Any, prefix: str) -> None:
        fields = rms.state if isinstance(rms, RunningMeanStdRecord) else None
        if not isinstance(fields, dict) or not all(k in fields for k in ("mean", "var", "count")):
            raise UserError(f"{path}: its {prefix[:-1]} statistics are not a RunningMeanStd; the file is damaged.")
        for k in ("mean", "var", "count"):
            value = np.asarray(fields[k], np.float64)
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                raise UserError(f"{path}: its {prefix}{k} is not finite numbers; the file is damaged.")
            tensors[f"{prefix}{k}"] = value

    obs_rms = state.get("obs_rms")
    if settings["norm_obs"]:
        if isinstance(obs_rms, dict):
            keys = state.get("norm_obs_keys")
            if keys is not None and sorted(keys) != sorted(obs_rms):
                raise UserError(f"{path} normalizes only some observation keys, which deeprl's Normalizer cannot.")
            for key, rms in obs_rms.items():
                stats(rms, f"normalize.obs.{key}.")
        else:
            stats(obs_rms, "normalize.obs.")
    if settings["norm_reward"]:
        stats(state.get("ret_rms"), "normalize.ret.")
    return settings, tensors


def find_vec_normalize(path: Path) -> Path | None:
    """The VecNormalize statistics that go with an SB3 file: beside it (a Hub repo), or in RL-Zoo's
    `<env>_N/<env>/vec_normalize.pkl` beside `<env>_N/<env>.zip`."""
    for candidate in (path.parent / VEC_NORMALIZE, path.parent / path.stem / VEC_NORMALIZE):
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------------------------------------
# The entry points: an agent, a converted model folder


def load(path: str | Path, env: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, tensors) in deeprl's format for the SB3 file at `path`."""
    model = read_zip(path)
    return with_statistics(model, *to_deeprl(model, resolve_env(model, env)))


def with_statistics(model: SB3Model, config: dict, tensors: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(config, tensors) with the VecNormalize statistics found beside the file, if any (find_vec_normalize)."""
    stats = find_vec_normalize(model.path)
    if stats is not None:
        if model.algo == "dqn":
            raise UserError(f"{stats} goes with {model.path.name}, but deeprl's DQN has no observation normalization.")
        settings, norm = read_vec_normalize(stats)
        config["policy"]["normalize"] = settings
        config["source"]["vec_normalize"] = stats.name
        tensors.update(norm)
    return config, tensors


def load_sb3_agent(path: str | Path, env: str | None = None) -> Any:  # a deeprl.agent.Agent (it imports this module)
    """An agent for an SB3 .zip: the weights mapped onto deeprl's policy, then loaded as a deeprl model is."""
    from deeprl.algos import get_algo

    config, tensors = load(path, env)
    agent = get_algo(config["algo"]).load_agent(config, tensors)
    setattr(agent, "source", str(path))  # noqa: B010  # as load_agent marks where a model came from
    return agent


def convert(path: str | Path, out_dir: str | Path, env: str | None = None) -> dict:
    """Write deeprl's model folder (config.json + model.safetensors) for an SB3 .zip; returns the config."""
    from deeprl.algos import get_algo
    from deeprl.modelio import save_model

    config, tensors = load(path, env)
    get_algo(config["algo"]).load_agent(config, tensors)  # every weight checked against the env before writing
    save_model(Path(out_dir), tensors, config)
    return config


# ----------------------------------------------------------------------------------------------------------
# Which course task a Hub repo's zip is for (the leaderboard's verifier, deeprl.leaderboard.sandbox, asks)


def course_task(card: dict, name: str | None) -> str | None:
    """The ranked course task an SB3 repo is for: the first of its card's tags, its card's results dataset and its
    name (`ppo-LunarLander-v2`) that is one; None when none is. Only names decide: an SB3 file records no env
    settings we read, and verification builds the task from its tag alone (deeprl.envs.ranked_task)."""
    from deeprl.envs import ranked_task

    meta = card.get("card_meta") if isinstance(card.get("card_meta"), dict) else {}
    tags = meta.get("tags") if isinstance(meta, dict) else None
    candidates = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    claim = card.get("claim") if isinstance(card.get("claim"), dict) else {}
    if isinstance(claim, dict) and isinstance(claim.get("env_tag"), str):
        candidates.append(claim["env_tag"])
    candidates += names_env(name) if name else []
    for candidate in candidates[:200]:
        tag, why = ranked_task(candidate[:100])
        if tag is not None and why is None:
            return tag
    return None
