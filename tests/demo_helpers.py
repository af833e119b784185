"""Demonstrations the imitation tests share: a one-line CartPole expert and a short dataset of its episodes."""

from pathlib import Path

from deeprl import datasets


class Heuristic:
    """A CartPole expert in one line (500 of 500 steps): push toward the side the pole falls to."""

    env_id, env_kwargs, config = "CartPole-v1", {}, {}

    def act(self, obs, deterministic=True):
        return int(obs[2] + 0.5 * obs[3] > 0)


def cartpole_demos(folder: Path, episodes: int, steps: int = 200) -> Path:
    """`episodes` of the heuristic, each cut to its first `steps` (the tests train on them; 200 steps say what 500
    do), written as a trajectory dataset in `folder`."""
    trajectories, info = datasets.agent_episodes(Heuristic(), episodes, seed=0)
    for t in trajectories:
        t.observations, t.actions, t.rewards, t.dones = (
            t.observations[:steps],
            t.actions[:steps],
            t.rewards[:steps],
            t.dones[:steps],
        )
    datasets.write(folder, trajectories, source="the heuristic", env_id=info["env_id"], spaces=info["spaces"])
    return folder
