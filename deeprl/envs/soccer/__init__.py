"""SoccerTwos (Unit 7): a 2 vs 2 soccer game in the shape of ML-Agents' SoccerTwos, written over numpy arrays.

One job a module (the game's rules and observations are described in core.py):

- core.py: the game: `SoccerCore` steps N matches at once (training, matches, benchmarks), and its constants;
- render.py: `frame(core, i)`, a top-down RGB picture of match i;
- teams.py: the teams that are not learned (scripted, random, still), `PolicyTeam` for a learned agent, and
  `play_matches` between two teams;
- pettingzoo.py: `parallel_env()`, the PettingZoo ParallelEnv over one match, and `env()`, its AEC form;
- team_env.py: `SoccerTeamEnv`, the Gymnasium env the single-agent registry builds (`make`): one team against a
  fixed opponent (the scripted team by default), for `deeprl evaluate` and replays.

The names below are the ones the rest of deeprl uses, so `from deeprl.envs import soccer; soccer.SoccerCore`
works. A test that changes a constant changes it in the module that reads it (`soccer.core.RAY_LENGTH`).
"""

from deeprl.envs.soccer.core import (
    AGENT_IDS,
    AGENT_RADIUS,
    BALL,
    BALL_RADIUS,
    CAST_RADIUS,
    CORNER_CUT,
    DT,
    FIELD_LENGTH,
    FIELD_WIDTH,
    GOAL_DEPTH,
    GOAL_HALF_WIDTH,
    MAX_STEPS,
    N_AGENTS,
    N_BACKWARD,
    N_FORWARD,
    N_KINDS,
    N_RAYS,
    N_STACK,
    OBS_SIZE,
    OPP_GOAL,
    OPPONENT,
    OWN_GOAL,
    RAY_ANGLES,
    RAY_LENGTH,
    RAY_VALUES,
    TEAM,
    TEAMMATE,
    WALL,
    SoccerCore,
)
from deeprl.envs.soccer.pettingzoo import SoccerTwosParallelEnv, env, parallel_env
from deeprl.envs.soccer.render import frame
from deeprl.envs.soccer.team_env import SoccerTeamEnv, make
from deeprl.envs.soccer.teams import (
    BUILTIN_TEAMS,
    PolicyTeam,
    RandomTeam,
    ScriptedTeam,
    StillTeam,
    Team,
    builtin_team,
    play_matches,
    scripted_actions,
    team_slots,
)

__all__ = [
    "AGENT_IDS",
    "AGENT_RADIUS",
    "BALL",
    "BALL_RADIUS",
    "BUILTIN_TEAMS",
    "CAST_RADIUS",
    "CORNER_CUT",
    "DT",
    "FIELD_LENGTH",
    "FIELD_WIDTH",
    "GOAL_DEPTH",
    "GOAL_HALF_WIDTH",
    "MAX_STEPS",
    "N_AGENTS",
    "N_BACKWARD",
    "N_FORWARD",
    "N_KINDS",
    "N_RAYS",
    "N_STACK",
    "OBS_SIZE",
    "OPPONENT",
    "OPP_GOAL",
    "OWN_GOAL",
    "RAY_ANGLES",
    "RAY_LENGTH",
    "RAY_VALUES",
    "TEAM",
    "TEAMMATE",
    "WALL",
    "PolicyTeam",
    "RandomTeam",
    "ScriptedTeam",
    "SoccerCore",
    "SoccerTeamEnv",
    "SoccerTwosParallelEnv",
    "StillTeam",
    "Team",
    "builtin_team",
    "env",
    "frame",
    "make",
    "parallel_env",
    "play_matches",
    "scripted_actions",
    "team_slots",
]
