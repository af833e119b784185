"""`deeprl export MODEL --onnx OUT.onnx`: a saved agent as one ONNX file that picks the actions deeprl's agent picks.

The course's Unity agents ship as ONNX files; this gives every deeprl policy the same form, to run in
onnxruntime, a browser or a game engine without deeprl or PyTorch. What the agent does to an observation before its
network (the frozen VecNormalize statistics of PPO/A2C, APPO's scaling and running normalization, DQN's and the
CNN's /255) is inside the graph, and so is the step from the network's output to the action (argmax, one argmax per
branch, the Gaussian's mean clipped to the action box as our evaluation clips it), so that the file's `action`
output is what `deeprl.agent` plays, on the same observation.

Graphs, all batch-first (dimension 0 is `batch`, any size):

    policy                         inputs                       outputs
    Q-table (qlearning, .pkl)      obs int64                    action int64, q_values float64
    actor-critic (PPO, A2C, SB3)   obs, or one input per key    action, logits (discrete) or mean (Box), value
                                   of a Dict observation
    DQN (MLP or Nature CNN)        obs                          action int64, q_values
    REINFORCE                      obs float32                  action int64, logits
    SoccerTwos self-play           obs float32 [batch, 336]     action int64 [batch, 3], logits [batch, 3, 3]
    APPO (Sample Factory's GRU)    obs, h_in [batch, rnn_size]  action int64, logits, value, h_out

Inputs take the env's own observations (uint8 frames for Atari and Doom, float32 vectors, int64 states): nothing
needs preprocessing outside the file. A Dict observation (Panda's) is one input per key, named by the key, so a
session is fed `{k: v[None] for k, v in obs.items()}`. SoccerTwos gives a team's observation (2, 336): that is a
batch of two players, each one row. APPO's GRU state goes in as `h_in` (zeros at an episode's start) and comes back
as `h_out`, as ML-Agents' and Sample Factory's recurrent ONNX files carry theirs; the metadata key `action_repeat`
says how many env steps each decision is held where the model was trained with frame skip.

Networks are exported by torch.onnx's TorchScript exporter (`dynamo=False`: in torch 2.13 it still exists and
needs nothing beyond `onnx`; the dynamo exporter would add onnxscript); the Q-table graph is written with onnx.helper
(a Gather and an ArgMax). The Q-table stays float64, so ties resolve as numpy's argmax resolves them.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deeprl.errors import UserError

if TYPE_CHECKING:
    import onnx

    from deeprl.agent import Agent
    from deeprl.policies import PolicyAgent
    from deeprl.policies.recurrent import RecurrentActorCritic

OPSET = 15  # the newest that Unity's Sentis (Inference Engine) 2.x reads: it lists opsets 7 to 15; ONNX Runtime too
BATCH = "batch"


def require_onnx() -> Any:  # the onnx module, or one sentence saying how to get it
    try:
        import onnx
    except ImportError:
        raise UserError("Exporting to ONNX needs the onnx package; install it with 'pip install onnx'.") from None
    return onnx


# ----------------------------------------------------------------------------------------------------------
# Pieces of the graphs


class Standardize(nn.Module):
    """Frozen VecNormalize statistics of one observation (deeprl.normalize.Normalizer._norm), in float64 as numpy
    computes them, then float32: the graph's numbers are the agent's to the last bit."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: np.ndarray, var: np.ndarray, epsilon: float, clip: float):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float64)))
        self.register_buffer("std", torch.as_tensor(np.sqrt(np.asarray(var, np.float64) + epsilon)))
        self.clip = float(clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std).clamp(-self.clip, self.clip).float()


class ActorCriticGraph(nn.Module):
    """PolicyAgent.act on a batch: normalization, the actor-critic, its mode, clipped to the box when continuous."""

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, agent: PolicyAgent, obs_space: Any):  # obs_space: a Gymnasium space
        super().__init__()
        self.policy = agent.policy
        self.keys: list[str] | None = list(obs_space.spaces) if _is_dict(obs_space) else None
        self.norms = nn.ModuleDict()
        norm = agent.normalizer
        if norm is not None:
            for k, rms in norm.obs_rms.items():
                # (the Normalizer names a single observation's statistics ""; a ModuleDict needs a name)
                self.norms[k or "obs"] = Standardize(rms.mean, rms.var, norm.epsilon, norm.clip_obs)
        if self.policy.continuous:
            self.register_buffer("low", torch.as_tensor(np.asarray(agent.low, np.float32)))
            self.register_buffer("high", torch.as_tensor(np.asarray(agent.high, np.float32)))

    def _norm(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return self.norms[key](x) if key in self.norms else x

    def forward(self, *obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.keys is None:
            x: Any = self._norm("obs", obs[0])
        else:
            x = {k: self._norm(k, o) for k, o in zip(self.keys, obs)}
        dist, value = self.policy(x)
        action = self.policy.sample(dist, deterministic=True)
        if self.policy.continuous:  # np.clip(a, low, high), as PolicyAgent.act
            action = torch.minimum(torch.maximum(action.reshape(-1, *self.low.shape), self.low), self.high)
        elif self.policy.nvec is not None:
            action = action.reshape(-1, *self.policy.action_shape)
        return action, dist, value


class QGraph(nn.Module):
    """DQNAgent.act on a batch: the greedy action and the Q-values."""

    def __init__(self, qnet: nn.Module):
        super().__init__()
        self.q = qnet

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.q(obs)
        return q.argmax(1), q


class LogitsGraph(nn.Module):
    """A network of logits read by argmax: REINFORCE's policy (one choice), SoccerTwos' actor (`branches` choices
    of `choices` each, ML-Agents' MultiDiscrete)."""

    def __init__(self, net: nn.Module, branches: int = 0, choices: int = 0):
        super().__init__()
        self.net, self.branches, self.choices = net, branches, choices

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(obs.reshape(obs.shape[0], -1).float())
        if self.branches:
            logits = logits.reshape(-1, self.branches, self.choices)
        return logits.argmax(-1), logits


class RecurrentGraph(nn.Module):
    """One step of RecurrentAgent.act: (obs, h_in) -> (action, logits, value in return units, h_out)."""

    def __init__(self, model: RecurrentActorCritic):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, values, h = self.model.step(obs, h)
        return logits.argmax(-1), logits, self.model.denormalize(values), h


class FeedForwardGraph(nn.Module):
    """APPO without a GRU (rnn_size 0, SF's use_rnn=False): no state to carry."""

    def __init__(self, model: RecurrentActorCritic):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, values, _ = self.model.step(obs, self.model.initial_state(obs.shape[0]))
        return logits.argmax(-1), logits, self.model.denormalize(values)


# ----------------------------------------------------------------------------------------------------------
# Which graph for which agent


@dataclass
class Plan:
    """What to export: a torch module with example inputs and port names, or a finished ONNX graph."""

    kind: str  # a few words for the summary
    inputs: list[str]
    outputs: list[str]
    module: nn.Module | None = None
    example: tuple[torch.Tensor, ...] = ()
    graph: onnx.ModelProto | None = None
    metadata: dict[str, str] | None = None


def _is_dict(space: Any) -> bool:
    return type(space).__name__ == "Dict"


def _example(space: Any) -> torch.Tensor:
    """A batch of two observations of `space` (two, so that no size-1 dimension gets folded into the graph)."""
    sample = np.stack([space.sample(), space.sample()])
    return torch.as_tensor(sample.astype(np.int64) if type(space).__name__ == "Discrete" else sample)


def plan(agent: Agent, obs_space: Any) -> Plan:
    """The graph for `agent` (whatever deeprl.agent.load_agent returns), given its env's observation space."""
    from deeprl.algos.dqn import DQNAgent
    from deeprl.algos.qlearning import QTableAgent
    from deeprl.algos.reinforce import ReinforceAgent
    from deeprl.algos.selfplay import SoccerAgent
    from deeprl.policies import PolicyAgent
    from deeprl.policies.recurrent import RecurrentAgent

    if isinstance(agent, QTableAgent):
        return Plan("Q-table", ["obs"], ["action", "q_values"], graph=qtable_graph(agent.qtable))
    if isinstance(agent, PolicyAgent):
        policy = agent.policy
        outputs = ["action", "mean" if policy.continuous else "logits", "value"]
        kind = "actor-critic" + (" (CNN)" if type(policy.features).__name__ == "CNNFeatures" else "")
        module: nn.Module = ActorCriticGraph(agent, obs_space)
        if _is_dict(obs_space):  # one input per key, in the order the features extractor reads them
            keys = list(obs_space.spaces)
            return Plan(kind, keys, outputs, module, tuple(_example(obs_space.spaces[k]) for k in keys))
        return Plan(kind, ["obs"], outputs, module, (_example(obs_space),))
    if isinstance(agent, DQNAgent):
        kind = "DQN Q-network" + (" (CNN)" if agent.q.kind == "cnn" else "")
        return Plan(kind, ["obs"], ["action", "q_values"], QGraph(agent.q), (_example(obs_space),))
    if isinstance(agent, ReinforceAgent):
        module = LogitsGraph(agent.net)
        return Plan("REINFORCE policy", ["obs"], ["action", "logits"], module, (_example(obs_space),))
    if isinstance(agent, SoccerAgent):
        from deeprl.envs.soccer import OBS_SIZE

        example = (torch.rand(2, OBS_SIZE),)  # one row a player: a team's observation is a batch of two
        module = LogitsGraph(agent.actor, 3, 3)
        return Plan("SoccerTwos player policy", ["obs"], ["action", "logits"], module, example)
    if isinstance(agent, RecurrentAgent):
        model, obs = agent.model, _example(obs_space)
        meta = {"action_repeat": str(agent.action_repeat)}
        if model.core is None:
            module = FeedForwardGraph(model)
            return Plan("APPO actor-critic", ["obs"], ["action", "logits", "value"], module, (obs,), metadata=meta)
        h = torch.zeros(2, model.rnn_size)
        outputs = ["action", "logits", "value", "h_out"]
        return Plan("APPO actor-critic (GRU)", ["obs", "h_in"], outputs, RecurrentGraph(model), (obs, h), metadata=meta)
    raise UserError(f"deeprl cannot export a {type(agent).__name__} to ONNX yet.")


def qtable_graph(qtable: np.ndarray) -> onnx.ModelProto:
    """obs [batch] int64 -> q_values = Q[obs] [batch, n_actions], action = argmax (the first on ties)."""
    require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    q = np.asarray(qtable, np.float64)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["qtable", "obs"], ["q_values"], axis=0),
            helper.make_node("ArgMax", ["q_values"], ["action"], axis=1, keepdims=0, select_last_index=0),
        ],
        "qtable",
        [helper.make_tensor_value_info("obs", TensorProto.INT64, [BATCH])],
        [
            helper.make_tensor_value_info("action", TensorProto.INT64, [BATCH]),
            helper.make_tensor_value_info("q_values", TensorProto.DOUBLE, [BATCH, q.shape[1]]),
        ],
        initializer=[numpy_helper.from_array(q, "qtable")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deeprl")


def _from_torch(p: Plan) -> onnx.ModelProto:
    onnx = require_onnx()
    assert p.module is not None
    dynamic = {n: {0: BATCH} for n in p.inputs + p.outputs}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter announces its deprecation, and the tracer warns about Python branches on
        # shapes and dtypes, which are fixed for one model and so rightly traced as constants
        warnings.simplefilter("ignore")
        torch.onnx.export(
            p.module.eval(),
            p.example,
            Path(tmp) / "model.onnx",
            dynamo=False,
            input_names=p.inputs,
            output_names=p.outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
        )
        model = onnx.load(str(Path(tmp) / "model.onnx"))
    # the tracer leaves the dimensions after a reshape or an argmax unnamed; they are the example's, but the batch
    with torch.no_grad():
        outs = p.module(*p.example)
    for value, out in zip(model.graph.output, outs):
        dims = value.type.tensor_type.shape.dim
        for i, size in enumerate(out.shape):
            if i > 0:
                dims[i].Clear()
                dims[i].dim_value = int(size)
    return model


# ----------------------------------------------------------------------------------------------------------
# The entry point


def observation_space(agent: Agent) -> Any:
    """The observation space of the env the agent plays (the env is the source of truth, as for loading)."""
    from deeprl.envs import make_env

    env = make_env(agent.env_id, agent.env_kwargs)
    try:
        return env.observation_space
    finally:
        env.close()


def export(agent: Agent, path: str | Path, obs_space: Any = None) -> dict:
    """Write `agent` as an ONNX file at `path`; returns a summary (kind, opset, inputs, outputs, bytes)."""
    onnx = require_onnx()
    if obs_space is None:
        obs_space = observation_space(agent)
    p = plan(agent, obs_space)
    model = p.graph if p.graph is not None else _from_torch(p)
    config = agent.config
    from deeprl.version import __version__

    meta = {
        "deeprl_version": __version__,
        "algo": str(config.get("algo", "")),
        "env_id": agent.env_id,
        "env_kwargs": json.dumps(agent.env_kwargs or {}, sort_keys=True, default=str),
        "policy": p.kind,
        "action": "deterministic: argmax, or the Gaussian's mean clipped to the action space",
        **(p.metadata or {}),
    }
    onnx.helper.set_model_props(model, meta)
    model.doc_string = (
        f"deeprl {p.kind} for {agent.env_id}: inputs {', '.join(p.inputs)}; outputs {', '.join(p.outputs)}"
    )
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    from deeprl.modelio import atomic_write_bytes

    atomic_write_bytes(Path(path), data)
    return {
        "path": str(path),
        "kind": p.kind,
        "algo": meta["algo"],
        "env_id": agent.env_id,
        "opset": OPSET,
        "bytes": len(data),
        "inputs": [_port(v) for v in model.graph.input],
        "outputs": [_port(v) for v in model.graph.output],
        "metadata": {k: v for k, v in meta.items() if k != "deeprl_version"},
    }


def _port(value: Any) -> dict:  # an onnx.ValueInfoProto
    from onnx import helper

    tensor = value.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in tensor.shape.dim]
    return {"name": value.name, "dtype": str(helper.tensor_dtype_to_np_dtype(tensor.elem_type)), "shape": dims}


# ----------------------------------------------------------------------------------------------------------
# Checking a file against the agent


def sample_observations(space: Any, n: int, seed: int = 0) -> list[Any]:
    """`n` observations drawn from the space (all of it, normalization's clipped tails included)."""
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def _batch(obs: list[Any], inputs: list[Any]) -> dict[str, np.ndarray]:
    """The session's feed for a list of observations (`inputs`: its onnxruntime NodeArgs): a Dict observation's
    keys stacked one input each; SoccerTwos' team observations stacked into rows of players, the input's rank."""
    if isinstance(obs[0], dict):
        return {i.name: np.stack([o[i.name] for o in obs]) for i in inputs}
    x = np.stack([np.asarray(o) for o in obs])
    x = x.reshape(-1, *x.shape[x.ndim - len(inputs[0].shape) + 1 :])
    return {"obs": x.astype(np.int64) if x.dtype.kind in "iu" and x.ndim == 1 else x}


def check(agent: Agent, path: str | Path, obs: list[Any]) -> dict:
    """Play `obs` through the agent and through the file in onnxruntime: {'n', 'equal', 'max_abs_diff'}.
    Discrete actions count as equal when identical, continuous ones within 1e-5 (float32 arithmetic in another
    order). A recurrent agent sees `obs` as one episode, the file carries its state alongside."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("Checking the file needs onnxruntime; install it with 'pip install onnxruntime'.") from None
    from deeprl.nets import one_thread

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small batches; a second spinning thread only fights the env for a core
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    reset = getattr(agent, "reset", None)
    if reset is not None:
        reset()
    with one_thread():  # one observation at a time: one thread is fastest (deeprl.nets.one_thread)
        ours = [np.asarray(agent.act(o, deterministic=True)) for o in obs]
    if "h_in" in names:  # one decision every action_repeat calls, the state carried from one to the next
        repeat = int(getattr(agent, "action_repeat", 1))
        h = np.zeros([1, session.get_inputs()[1].shape[1]], np.float32)
        theirs, kept = [], []
        for i in range(0, len(obs), repeat):
            action, h = session.run(["action", "h_out"], {"obs": np.asarray(obs[i])[None], "h_in": h})
            theirs.append(action[0])
            kept.append(ours[i])
        ours, onnx_actions = kept, np.stack(theirs)
    else:
        onnx_actions = np.concatenate(
            [
                session.run(["action"], _batch(obs[i : i + 256], session.get_inputs()))[0]
                for i in range(0, len(obs), 256)
            ]
        )
    a = np.stack(ours)
    b = onnx_actions.reshape(a.shape)
    if np.issubdtype(a.dtype, np.floating):
        equal = np.isclose(a, b, rtol=1e-5, atol=1e-5).reshape(len(a), -1).all(1)
    else:
        equal = (a == b).reshape(len(a), -1).all(1)
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if len(a) else 0.0
    return {"n": len(a), "equal": int(equal.sum()), "max_abs_diff": diff}
