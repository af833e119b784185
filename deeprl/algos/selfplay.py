"""Self-play PPO for SoccerTwos (Unit 7), with ML-Agents' self-play settings and an Elo rating of the learner.

The learning team's two players share one policy (each acts on its own 336 ray values) and learn with PPO's
clipped objective. The other team is a "ghost": a frozen copy of the policy taken from a pool of past snapshots.
ML-Agents' GhostTrainer schedule, counted in learning-team agent steps (two per match step):

- every `save_steps` the current policy joins the pool of snapshots (the last `window` are kept);
- every `swap_steps` the ghost changes: with probability `play_against_latest_model_ratio` it becomes the
  current policy, otherwise a snapshot drawn uniformly from the pool;
- every `team_change` steps the learner changes sides (blue <-> purple). The change waits for the end of the
  rollout it falls in, so no trajectory mixes two players;
- the learner's Elo starts at `initial_elo` and moves after each finished match against the ghost's rating
  (win 1, draw 0.5 at the time limit, loss 0), K = `elo_k`; the ghost's rating moves the other way. Snapshots
  keep the rating they were taken with; the "latest" ghost plays at the learner's rating of the swap.

Everything runs in one process over `SoccerCore`'s arrays (`n_envs` matches side by side): one forward pass for
the learners, one for the ghost, one env step for all matches.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from deeprl import elo as elo_lib
from deeprl.envs import soccer
from deeprl.errors import UserError
from deeprl.settings import defaults

if TYPE_CHECKING:
    from deeprl.train import Run


@dataclass
class Settings:
    """ML-Agents' poca/SoccerTwos.yaml values (facts.md); steps are learning-team agent steps.

    :param n_timesteps: learning-team agent steps to train
    :param n_envs: matches played side by side
    :param n_steps: match steps per rollout: buffer = n_steps * n_envs * 2 = 20,480 (buffer_size)
    :param batch_size: minibatch size of the PPO update
    :param n_epochs: passes over each rollout
    :param learning_rate: Adam's step size
    :param gamma: discount factor
    :param gae_lambda: GAE's lambda
    :param clip_range: PPO's epsilon
    :param ent_coef: ML-Agents' beta
    :param vf_coef: value loss weight
    :param max_grad_norm: gradient norm clip
    :param hidden_units: width of each hidden layer
    :param num_layers: hidden layers
    :param activation: hidden activation
    :param ball_touch: ML-Agents' SoccerTwos env parameter: +0.2 * ball_touch per touch (0 in the course)
    :param ball_progress: shaping not in ML-Agents (0 = the course's sparse reward): ball_progress * (distance the
        ball moved towards the opposing goal) / field length, each step. A difference of potentials, so a whole
        episode adds at most about ball_progress, and what wins matches is unchanged; it gets a short run past the
        "stay away from the ball" stalemate pure self-play can fall into early.
    :param ball_approach: not in ML-Agents either: ball_approach * (how much closer the team's nearest player got
        to the ball) / field length, each step; a difference of potentials too. Players that drift away from the
        ball draw matches.
    :param own_goal: not in ML-Agents: an extra -own_goal for the learning player who touched the ball last before
        its team conceded (an own goal, or a ball left for the opponent). Trained teams lose mostly this way: in 31
        of 33 losses to the random team, our team had touched the ball last.
    :param save_steps: self-play: steps between snapshots joining the pool
    :param team_change: self-play: steps between side changes
    :param swap_steps: self-play: steps between ghost swaps
    :param window: self-play: snapshots kept in the pool
    :param play_against_latest_model_ratio: self-play: share of swaps to the current policy
    :param initial_elo: the learner's starting rating
    :param elo_k: Elo's K
    :param scripted_opponent_ratio: not in ML-Agents (0 = its self-play unchanged): the share of matches whose
        opponent is the scripted built-in team instead of the ghost, drawn per match at each kick-off. A curriculum:
        a passive random team and the scripted team are opponents a snapshot pool of one lineage may never show.
        These matches do not move Elo.
    :param random_opponent_ratio: the same for the random team
    :param centralized_critic: MA-POCA's idea without its attention: the critic sees both teammates' observations
        (the actor still sees only its own, so the saved model is the same shape either way)
    :param checkpoint_every: steps between checkpoints
    :param max_minutes: wall-clock budget; training stops (and saves) at the first rollout past it
    :param torch_threads: torch's threads
    """

    n_timesteps: int = 5_000_000
    n_envs: int = 64
    n_steps: int = 160
    batch_size: int = 2048
    n_epochs: int = 3
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.005
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_units: int = 512
    num_layers: int = 2
    activation: str = "tanh"
    ball_touch: float = 0.0
    ball_progress: float = 0.0
    ball_approach: float = 0.0
    own_goal: float = 0.0
    save_steps: int = 50_000
    team_change: int = 200_000
    swap_steps: int = 2_000
    window: int = 10
    play_against_latest_model_ratio: float = 0.5
    initial_elo: float = 1200.0
    elo_k: float = 16.0
    scripted_opponent_ratio: float = 0.0
    random_opponent_ratio: float = 0.0
    centralized_critic: bool = False
    checkpoint_every: int = 200_000
    max_minutes: float | None = None
    torch_threads: int = 1


DEFAULTS = defaults(Settings)
TAGS = ["ppo", "self-play", "multi-agent", "custom-implementation"]


# -----------------------------------------------------------------------------------------------------------
# The ghost schedule and the Elo bookkeeping (plain Python, no torch: tested on its own)


class SelfPlay:
    """Snapshots, ghost swaps, side changes and Elo, following ML-Agents' GhostTrainer."""

    def __init__(self, hp: Settings, rng: np.random.Generator):
        self.save_steps, self.swap_steps = hp.save_steps, hp.swap_steps
        self.team_change, self.window = hp.team_change, hp.window
        self.ratio, self.k = hp.play_against_latest_model_ratio, hp.elo_k
        for key in ("save_steps", "swap_steps", "team_change", "window"):
            if getattr(hp, key) < 1:
                raise UserError(f"{key} must be at least 1.")
        if not 0.0 <= self.ratio <= 1.0:
            raise UserError("play_against_latest_model_ratio must lie between 0 and 1.")
        self.rng = rng
        self.elo = hp.initial_elo
        self.pool: list[dict] = []  # {"weights": {...}, "elo": float, "step": int}
        self.opponent = -1  # -1: the latest policy (copied at the swap), else an index into the pool
        self.latest_elo = self.elo
        self.learning_side = 0
        self.last_save = self.last_swap = self.last_team_change = 0
        self.n_swaps = self.n_team_changes = 0

    def opponent_elo(self) -> float:
        return self.latest_elo if self.opponent < 0 else self.pool[self.opponent]["elo"]

    def maybe_snapshot(self, step: int, weights_fn: Callable[[], dict]) -> bool:
        if step - self.last_save < self.save_steps:
            return False
        self.last_save = step
        self.pool.append({"weights": weights_fn(), "elo": self.elo, "step": step})
        if len(self.pool) > self.window:
            dropped = self.pool.pop(0)
            del dropped
            if self.opponent >= 0:
                self.opponent -= 1  # the ghost playing now keeps its weights even if it left the pool
        return True

    def maybe_swap(self, step: int, weights_fn: Callable[[], dict]) -> dict | None:
        """New ghost weights when a swap is due (None otherwise)."""
        if step - self.last_swap < self.swap_steps:
            return None
        self.last_swap = step
        self.n_swaps += 1
        if self.pool and self.rng.random() > self.ratio:
            self.opponent = int(self.rng.integers(len(self.pool)))
            return self.pool[self.opponent]["weights"]
        self.opponent, self.latest_elo = -1, self.elo
        return weights_fn()

    def maybe_change_team(self, step: int) -> bool:
        if step - self.last_team_change < self.team_change:
            return False
        self.last_team_change = step
        self.learning_side = 1 - self.learning_side
        self.n_team_changes += 1
        return True

    def record(self, result: float) -> float:
        """One finished match from the learner's side (1 win, 0.5 draw, 0 loss); returns the Elo change."""
        change = elo_lib.rating_change(self.elo, self.opponent_elo(), result, self.k)
        self.elo += change
        if self.opponent < 0:
            self.latest_elo -= change
        else:
            self.pool[self.opponent]["elo"] -= change
        return change

    def state(self) -> dict:
        return {
            "elo": self.elo,
            "latest_elo": self.latest_elo,
            "opponent": self.opponent,
            "learning_side": self.learning_side,
            "last_save": self.last_save,
            "last_swap": self.last_swap,
            "last_team_change": self.last_team_change,
            "n_swaps": self.n_swaps,
            "n_team_changes": self.n_team_changes,
            "pool": [{"elo": p["elo"], "step": p["step"]} for p in self.pool],
        }

    def load_state(self, state: dict, tensors: dict) -> None:
        for key in (
            "elo",
            "latest_elo",
            "opponent",
            "learning_side",
            "last_save",
            "last_swap",
            "last_team_change",
            "n_swaps",
            "n_team_changes",
        ):
            setattr(self, key, type(getattr(self, key))(state[key]))
        self.pool = []
        for i, p in enumerate(state["pool"]):
            head = f"pool.{i}."
            weights = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
            self.pool.append({"weights": weights, "elo": float(p["elo"]), "step": int(p["step"])})

    def pool_tensors(self) -> dict:
        return {f"pool.{i}.{k}": v for i, p in enumerate(self.pool) for k, v in p["weights"].items()}


def own_goal_blame(
    touched_last: np.ndarray,
    touched_mine: np.ndarray,
    touched_any: np.ndarray,
    conceded: np.ndarray,
    finished: np.ndarray,
) -> np.ndarray:
    """The learning players (n, 2) to blame for a goal conceded this step: those who made the ball's last touch.

    `touched_last` (n, 2) carries, between steps, which of the two made the latest touch (both False once an
    opponent touched); updated in place and cleared for `finished` matches. `touched_mine` (n, 2): contacts of
    the learning players this step; `touched_any` (n,): any contact this step.
    """
    touched_last[touched_any] = touched_mine[touched_any]
    blamed = touched_last & conceded[:, None]
    touched_last[finished] = False
    return blamed


# -----------------------------------------------------------------------------------------------------------
# Networks


def build_actor(obs_dim: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    from deeprl.nets import mlp

    # small last-layer gain: near-uniform first actions (CleanRL, PPO implementation details)
    return mlp(obs_dim, [hidden] * layers, 9, activation, out_std=0.01)


def build_critic(obs_dim: int, hidden: int, layers: int, activation: str) -> nn.Sequential:
    from deeprl.nets import mlp

    return mlp(obs_dim, [hidden] * layers, 1, activation, out_std=1.0)


def _dist(actor: nn.Module, obs: torch.Tensor) -> torch.distributions.Categorical:
    from torch.distributions import Categorical

    return Categorical(logits=actor(obs).view(-1, 3, 3))  # three branches of three choices


class TeamPolicy(nn.Module):
    """Actor and critic of one player, with the `evaluate_actions` PPO's update calls (deeprl.algos.ppo): the
    log-probability of a MultiDiscrete action is the sum over its three branches, and so is the entropy. With a
    centralized critic the observations it gets are the player's own followed by its teammate's; the actor reads
    only the first half."""

    def __init__(self, dims: tuple[int, int, int, str], centralized: bool = False):
        super().__init__()
        self.obs_dim = dims[0]
        self.actor = build_actor(*dims)
        self.critic = build_critic(dims[0] * (2 if centralized else 1), *dims[1:])

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logp_all = torch.log_softmax(self.actor(obs[:, : self.obs_dim]).view(-1, 3, 3), -1)
        logp = logp_all.gather(2, actions.long().unsqueeze(-1)).squeeze(-1).sum(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1).sum(-1)
        return logp, entropy, self.critic(obs).squeeze(-1)


def _numpy_weights(module: nn.Module) -> dict:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _load_weights(module: nn.Module, weights: dict) -> None:
    import torch

    module.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})


# -----------------------------------------------------------------------------------------------------------
# Training

GHOST, SCRIPTED, RANDOM = 0, 1, 2  # who plays the other team in a training match


def train(run: Run) -> None:
    from deeprl.algos.ppo import make_optimizer, ppo_update
    from deeprl.checkpoint import optimizer_from_tensors, optimizer_to_tensors
    from deeprl.rollout import compute_gae
    from deeprl.train import whole_batches

    hp = run.settings(Settings)
    if run.env_id != "SoccerTwos":
        raise UserError(f"Self-play trains SoccerTwos teams; {run.env_id} is a single-agent env (try --algo ppo).")
    torch.set_num_threads(hp.torch_threads)
    E, T = hp.n_envs, hp.n_steps
    if E < 1 or T < 1:
        raise UserError("n_envs and n_steps must be at least 1.")
    B = E * 2 * T
    mb = hp.batch_size
    if not 1 <= mb <= B:
        raise UserError(f"batch_size must lie between 1 and n_steps * n_envs * 2 = {B}.")
    max_steps = int(run.env_kwargs.get("max_steps", soccer.MAX_STEPS))
    unknown = set(run.env_kwargs) - {"max_steps", "opponent"}
    if unknown:
        raise UserError(f"SoccerTwos does not take the env kwargs {sorted(unknown)} (it takes max_steps, opponent).")
    rng = np.random.default_rng(run.seed)
    core = soccer.SoccerCore(E, max_steps=max_steps, seed=run.seed)
    dims = (soccer.OBS_SIZE, hp.hidden_units, hp.num_layers, hp.activation)
    central = hp.centralized_critic
    p_scripted, p_random = hp.scripted_opponent_ratio, hp.random_opponent_ratio
    if p_scripted < 0 or p_random < 0 or p_scripted + p_random > 1:
        raise UserError("scripted_opponent_ratio and random_opponent_ratio must be at least 0 and sum to at most 1.")
    policy = TeamPolicy(dims, central)
    actor, critic = policy.actor, policy.critic
    ghost = copy.deepcopy(actor).requires_grad_(False)
    optimizer = make_optimizer(policy.parameters(), hp.learning_rate)
    sp = SelfPlay(hp, rng)
    steps, updates, t_spent = 0, 0, 0.0
    if run.resumed:
        tensors, state = run.resumed
        _load_weights(actor, {k[6:]: v for k, v in tensors.items() if k.startswith("actor.")})
        _load_weights(critic, {k[7:]: v for k, v in tensors.items() if k.startswith("critic.")})
        _load_weights(ghost, {k[6:]: v for k, v in tensors.items() if k.startswith("ghost.")})
        optimizer_from_tensors(optimizer, tensors, state["optimizer"])
        sp.load_state(state["self_play"], tensors)
        steps, updates, t_spent = state["timesteps"], state["updates"], state.get("seconds", 0.0)
        run.restore_rng(tensors, state, rng)
        core.seed(int(rng.integers(2**31)))
        core.reset()
    n_total = hp.n_timesteps
    max_seconds = None if hp.max_minutes is None else hp.max_minutes * 60.0
    t_start = time.perf_counter() - t_spent
    writer = run.writer()
    rows = np.arange(E)[:, None]
    recent: list[float] = []  # results of the last 100 matches against the ghost (1, 0.5, 0)
    # each match's opponent: GHOST, SCRIPTED or RANDOM, drawn again at every kick-off
    opp_p = np.array([1.0 - p_scripted - p_random, p_scripted, p_random])
    fixed_teams: dict[int, soccer.ScriptedTeam | soccer.RandomTeam] = {
        SCRIPTED: soccer.ScriptedTeam(),
        RANDOM: soccer.RandomTeam(int(rng.integers(2**31))),
    }
    recent_fixed: dict[int, list[float]] = {SCRIPTED: [], RANDOM: []}

    def draw_opponents(n: int) -> np.ndarray:
        if p_scripted == 0 and p_random == 0:
            return np.zeros(n, dtype=np.int64)  # no draw from rng: runs without the option repeat as before
        return rng.choice(3, size=n, p=opp_p)

    opp_kind = draw_opponents(E)

    def critic_input(o: np.ndarray) -> np.ndarray:
        """(E, 4, 336) observations -> what the critic reads for the learners (E * 2, 336 or 672)."""
        own = o[rows, mine].reshape(E * 2, -1)
        if not central:
            return own
        return np.concatenate([own, o[rows, mine[:, ::-1]].reshape(E * 2, -1)], axis=1)

    def checkpoint() -> None:
        opt_t, opt_j = optimizer_to_tensors(optimizer)
        tensors = {
            **{f"actor.{k}": v for k, v in _numpy_weights(actor).items()},
            **{f"critic.{k}": v for k, v in _numpy_weights(critic).items()},
            **{f"ghost.{k}": v for k, v in _numpy_weights(ghost).items()},
            **sp.pool_tensors(),
            **opt_t,
        }
        run.checkpoint(
            tensors,
            {
                "timesteps": steps,
                "updates": updates,
                "optimizer": opt_j,
                "self_play": sp.state(),
                "seconds": time.perf_counter() - t_start,
            },
            rng,
        )

    def policy_config() -> dict:
        return {
            "obs_dim": dims[0],
            "hidden_units": dims[1],
            "num_layers": dims[2],
            "activation": dims[3],
            "nvec": [3, 3, 3],
        }

    def snapshot() -> tuple[dict, dict]:
        return {f"actor.{k}": v for k, v in _numpy_weights(actor).items()}, policy_config()

    def save(stopped: bool) -> None:
        run.save_model(snapshot()[0], policy_config(), stopped=stopped, timesteps=steps, updates=updates, elo=sp.elo)

    b_obs = np.zeros((T, E * 2, soccer.OBS_SIZE * (2 if central else 1)), dtype=np.float32)
    b_act = np.zeros((T, E * 2, 3), dtype=np.int64)
    b_logp = np.zeros((T, E * 2), dtype=np.float32)
    b_val = np.zeros((T, E * 2), dtype=np.float32)
    b_rew = np.zeros((T, E * 2), dtype=np.float32)
    b_done = np.zeros((T, E * 2), dtype=np.float32)
    obs = core.observe()
    gamma, touch = hp.gamma, 0.2 * hp.ball_touch
    progress_coef = hp.ball_progress / soccer.FIELD_LENGTH
    approach_coef = hp.ball_approach / soccer.FIELD_LENGTH
    own_goal = hp.own_goal
    touched_last = np.zeros((E, 2), dtype=bool)  # which learning player(s) touched the ball in its last touch

    def team_ball_distance() -> np.ndarray:
        return np.linalg.norm(core.pos[rows, mine] - core.ball[:, None], axis=-1).min(1)

    with run.loop(
        whole_batches(n_total, B),
        "steps",
        initial=steps,
        checkpoint=checkpoint,
        save=save,
        checkpoint_every=hp.checkpoint_every,
    ) as loop:  # whole rollouts of B steps
        while steps < n_total:
            if max_seconds is not None and time.perf_counter() - t_start > max_seconds:
                break
            if sp.maybe_change_team(steps):
                core.reset()  # the learner changes sides: fresh kick-offs, no trajectory crosses the change
                obs = core.observe()
                touched_last[:] = False
            side = np.full(E, sp.learning_side)
            mine, theirs = soccer.team_slots(side), soccer.team_slots(1 - side)
            ep_results = []
            for t in range(T):
                c_in = critic_input(obs)
                with torch.no_grad():
                    x = torch.from_numpy(c_in)
                    d = _dist(actor, x[:, : soccer.OBS_SIZE])
                    a = d.sample()
                    b_logp[t] = d.log_prob(a).sum(-1).numpy()
                    b_val[t] = critic(x).squeeze(-1).numpy()
                    o_g = obs[rows, theirs]
                    a_g = _dist(ghost, torch.from_numpy(o_g.reshape(E * 2, -1))).sample().numpy().reshape(E, 2, 3)
                for kind, team in fixed_teams.items():
                    here = opp_kind == kind
                    if here.any():
                        a_g[here] = team.act(o_g, core, 1 - side)[here]
                b_obs[t], b_act[t] = c_in, a.numpy()
                actions = np.zeros((E, soccer.N_AGENTS, 3), dtype=np.int64)
                actions[rows, mine] = b_act[t].reshape(E, 2, 3)
                actions[rows, theirs] = a_g
                ball_x = core.ball[:, 0].copy()
                if approach_coef:
                    dist0 = team_ball_distance()
                r, term, trunc, scorer = core.step(actions)
                rew = r[rows, mine].reshape(E * 2)
                if touch:
                    rew = rew + touch * core.touched[rows, mine].reshape(E * 2)
                if progress_coef:
                    towards = (core.ball[:, 0] - ball_x) * (1.0 if sp.learning_side == 0 else -1.0)
                    rew = rew + np.repeat(progress_coef * towards, 2).astype(np.float32)
                if approach_coef:
                    rew = rew + np.repeat(approach_coef * (dist0 - team_ball_distance()), 2).astype(np.float32)
                if own_goal:
                    blamed = own_goal_blame(
                        touched_last,
                        core.touched[rows, mine],
                        np.asarray(core.touched.any(1)),
                        term & (scorer != sp.learning_side),
                        term | trunc,
                    )
                    rew = rew - own_goal * blamed.reshape(E * 2)
                next_obs = core.observe()
                if trunc.any():  # time limit: not the end of the game's value, bootstrap from the last obs
                    k = np.flatnonzero(np.repeat(trunc, 2))
                    with torch.no_grad():
                        v_last = critic(torch.from_numpy(critic_input(next_obs)[k])).squeeze(-1)
                    rew[k] += gamma * v_last.numpy()
                done = term | trunc
                b_rew[t], b_done[t] = rew, np.repeat(done, 2)
                steps += E * 2
                for i in np.flatnonzero(done):
                    result = 0.5 if trunc[i] else (1.0 if scorer[i] == sp.learning_side else 0.0)
                    if opp_kind[i] == GHOST:
                        sp.record(result)
                        ep_results.append(result)
                    else:
                        recent_fixed[int(opp_kind[i])] = (recent_fixed[int(opp_kind[i])] + [result])[-100:]
                if done.any():
                    core.reset(done)
                    obs = core.observe()
                    opp_kind[done] = draw_opponents(int(done.sum()))
                else:
                    obs = next_obs
                sp.maybe_snapshot(steps, lambda: _numpy_weights(actor))
                new_ghost = sp.maybe_swap(steps, lambda: _numpy_weights(actor))
                if new_ghost is not None:
                    _load_weights(ghost, new_ghost)
            # PPO update on the learning team's experience
            with torch.no_grad():
                last_v = critic(torch.from_numpy(critic_input(obs))).squeeze(-1).numpy()
            adv, ret = compute_gae(b_rew, b_val, b_done, last_v, gamma, hp.gae_lambda)
            data = {
                "obs": torch.from_numpy(b_obs.reshape(B, -1)),
                "actions": torch.from_numpy(b_act.reshape(B, 3)),
                "values": torch.from_numpy(b_val.reshape(B)),
                "log_probs": torch.from_numpy(b_logp.reshape(B)),
                "advantages": torch.from_numpy(adv.reshape(B)),
                "returns": torch.from_numpy(ret.reshape(B)),
            }
            stats = ppo_update(
                policy,
                optimizer,
                data,
                n_epochs=hp.n_epochs,
                batch_size=mb,
                clip_range=hp.clip_range,
                clip_range_vf=None,
                ent_coef=hp.ent_coef,
                vf_coef=hp.vf_coef,
                max_grad_norm=hp.max_grad_norm,
                target_kl=None,
                normalize_advantage=True,
                rng=rng,
            )
            updates += 1
            recent = (recent + ep_results)[-100:]
            win = float(np.mean([r == 1.0 for r in recent])) if recent else None
            for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
                if key in stats:
                    writer.add_scalar(f"losses/{key}", stats[key], steps)
            writer.add_scalar("self_play/elo", sp.elo, steps)
            writer.add_scalar("self_play/pool_size", len(sp.pool), steps)
            if win is not None:
                writer.add_scalar("self_play/win_rate_vs_ghost", win, steps)
            for kind, name in ((SCRIPTED, "scripted"), (RANDOM, "random")):
                if recent_fixed[kind]:
                    writer.add_scalar(
                        f"self_play/win_rate_vs_{name}", float(np.mean(np.equal(recent_fixed[kind], 1.0))), steps
                    )
            writer.add_scalar("charts/steps_per_second", steps / max(time.perf_counter() - t_start, 1e-9), steps)
            shown = {
                name: round(float(np.mean(np.equal(recent_fixed[kind], 1.0))), 2)
                for kind, name in ((SCRIPTED, "vs_scripted"), (RANDOM, "vs_random"))
                if recent_fixed[kind]
            }
            if loop.update(B, steps, snapshot, elo=int(round(sp.elo)), win=win, pool=len(sp.pool), **shown):
                break
            loop.checkpoint_if_due(steps)


# -----------------------------------------------------------------------------------------------------------
# The saved agent


class SoccerAgent:
    """One player's policy: `act` takes one observation (336,) or a batch (k, 336), returns (3,) or (k, 3).

    In the single-agent registry env (`make_env("SoccerTwos")`) the observation is the team's (2, 336), so the
    same policy plays both players, as it was trained.
    """

    def __init__(self, actor: nn.Module, config: dict):
        self.actor, self.config = actor, config
        self.env_id, self.env_kwargs = config["env_id"], config.get("env_kwargs") or {}
        self._gen: torch.Generator | None = None
        self.reset()

    def reset(self) -> None:
        import torch

        self._gen = torch.Generator().manual_seed(int(self.config.get("seed", 0)))

    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        import torch

        x = np.asarray(obs, dtype=np.float32)
        if x.shape[-1] != soccer.OBS_SIZE:
            raise UserError(f"A SoccerTwos agent takes observations of {soccer.OBS_SIZE} values, not {x.shape}.")
        lead = x.shape[:-1]
        with torch.no_grad():
            logits = self.actor(torch.from_numpy(x.reshape(-1, soccer.OBS_SIZE))).view(-1, 3, 3)
            if deterministic:
                a = logits.argmax(-1)
            else:
                probs = torch.softmax(logits, -1).reshape(-1, 3)
                a = torch.multinomial(probs, 1, generator=self._gen).view(-1, 3)
        return a.numpy().reshape(lead + (3,))


def load_agent(config: dict, tensors: dict) -> SoccerAgent:
    from deeprl.modelio import check_shape

    pc = config.get("policy") or {}
    try:
        dims = (int(pc["obs_dim"]), int(pc["hidden_units"]), int(pc["num_layers"]), str(pc["activation"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(
            "config.json has no usable 'policy' entry (obs_dim, hidden_units, num_layers, "
            "activation); the model folder is damaged."
        ) from None
    if dims[0] != soccer.OBS_SIZE:
        raise UserError(f"The model expects {dims[0]} observation values but SoccerTwos gives {soccer.OBS_SIZE}.")
    from deeprl.nets import ACTIVATIONS

    if dims[3] not in ACTIVATIONS or not (1 <= dims[1] <= 65536 and 0 <= dims[2] <= 64):
        raise UserError("config.json describes a network deeprl cannot build; the model folder is damaged.")
    actor = build_actor(*dims)
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("actor.")}
    for name, param in actor.state_dict().items():
        if name not in weights:
            raise UserError(f"The model file has no 'actor.{name}' tensor; it is not a self-play SoccerTwos model.")
        check_shape(f"actor.{name}", weights[name], tuple(param.shape), "this network")
    _load_weights(actor, weights)
    actor.eval()
    return SoccerAgent(actor, config)
