"""Replays without a display: H.264 MP4 from rgb_array frames, for tabular and pygame-drawn envs."""

import numpy as np
import pytest

from deeprl.cli import main
from deeprl.errors import UserError
from deeprl.video import _rgb, probe, record


@pytest.fixture(scope="module")
def lake_run(tmp_path_factory):
    from deeprl.train import train

    return train(
        "qlearning",
        "FrozenLake-v1",
        env_kwargs={"is_slippery": False},
        log_folder=tmp_path_factory.mktemp("logs"),
        show_progress=False,
    ).run_dir


def test_record_frozenlake_is_h264_at_low_fps(lake_run, tmp_path):
    from deeprl.agent import load_agent

    out = record(load_agent(lake_run), tmp_path / "replay.mp4")
    info = probe(out["path"])
    assert info["codec"].startswith("h264")
    assert info["frames"] == out["frames"] == 7  # the reset frame + 6 moves of the shortest path
    assert out["fps"] == 1.0 and info["size"][0] % 2 == 0 and info["size"][1] % 2 == 0
    assert not list(tmp_path.glob(".*part*"))  # the temporary file is gone


def test_record_several_episodes_and_frame_cap(lake_run, tmp_path):
    from deeprl.agent import load_agent

    agent = load_agent(lake_run)
    two = record(agent, tmp_path / "two.mp4", n_episodes=2, fps=4)
    assert two["frames"] == 14 and probe(tmp_path / "two.mp4")["frames"] == 14
    capped = record(agent, tmp_path / "capped.mp4", n_episodes=3, max_frames=5)
    assert capped["frames"] == 5 and probe(tmp_path / "capped.mp4")["frames"] == 5


class _RandomCartPole:
    env_id, env_kwargs, config = "CartPole-v1", {}, {}

    def act(self, obs, deterministic=True):
        return int(obs[2] > 0)  # lean into the pole: a short, valid episode


def test_record_pygame_env_without_display(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = record(_RandomCartPole(), tmp_path / "cartpole.mp4", max_frames=40)
    info = probe(out["path"])
    assert info["codec"].startswith("h264") and info["frames"] == out["frames"] > 0


def test_odd_frames_are_padded_to_even():
    frame = np.zeros((5, 7, 4), dtype=np.uint8)
    out = _rgb(frame)
    assert out.shape == (6, 8, 3) and out.flags["C_CONTIGUOUS"]
    assert _rgb(np.ones((4, 4), dtype=np.float32)).shape == (4, 4, 3)


def test_record_refuses_non_mp4(lake_run, tmp_path):
    from deeprl.agent import load_agent

    with pytest.raises(UserError):
        record(load_agent(lake_run), tmp_path / "replay.gif")


def test_record_command(lake_run, tmp_path, capsys):
    out = tmp_path / "sub" / "r.mp4"
    assert main(["record", str(lake_run), "--out", str(out)]) == 0
    assert "Wrote 7 frames" in capsys.readouterr().out and probe(out)["frames"] == 7
    assert main(["record", str(lake_run), "--out", str(out), "--fps", "0"]) == 2
    assert main(["record", "nobody/nothing", "--out", str(out)]) == 2
