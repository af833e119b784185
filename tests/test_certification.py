"""Certification: assignments from facts.md, thresholds at 79 / 80 / 100 %, progress, the certificate files."""

import io

import pytest

from deeprl import certification as cert
from deeprl.certification import ASSIGNMENTS, assess, certificate_level, progress, write_certificate
from deeprl.errors import UserError
from lb_helpers import PASSING, add_model, add_passing


@pytest.fixture
def all_runnable(monkeypatch):
    """Pretend every env is registered, so thresholds can be tested before every env is implemented."""
    monkeypatch.setattr(cert, "env_runnable", lambda tags: True)


def test_assignments_are_the_eleven_rows_of_the_course():
    assert len(ASSIGNMENTS) == 11
    assert [a.unit for a in ASSIGNMENTS] == ["1", "2", "2", "3", "4", "4", "5", "6", "7", "8.1", "8.2"]
    mins = {a.key: a.minimum for a in ASSIGNMENTS}
    assert mins["unit1"] == 200 and mins["unit2-taxi"] == 4.5 and mins["unit6"] == -3.5 and mins["unit8.2"] == 5
    assert mins["unit5"] is None and mins["unit7"] is None and mins["unit8.1"] is None


@pytest.mark.parametrize("passed,total,level", [
    (79, 100, None), (80, 100, "completion"), (99, 100, "completion"), (100, 100, "excellence"),
    (8, 11, None), (9, 11, "completion"), (10, 11, "completion"), (11, 11, "excellence"), (0, 11, None),
    (4, 5, "completion"), (0, 0, None)])
def test_certificate_thresholds(passed, total, level):
    assert certificate_level(passed, total) == level


def _models(*items):
    return [{"repo_id": f"u/{i}", "env": env, "algo": algo, "result": r, "mean_reward": r, "std_reward": 0.0,
             "status": "ok", "error": None, "revision": "0" * 40} for i, (env, r, algo) in enumerate(items)]


def test_assess_minimums_push_only_and_algorithms():
    by_key = {a.key: a for a in ASSIGNMENTS}
    taxi = by_key["unit2-taxi"]
    assert assess(taxi, _models(("Taxi-v3", 4.5, "qlearning")), runnable=True)["passed"]  # >= minimum
    low = assess(taxi, _models(("Taxi-v3", 4.49, "qlearning")), runnable=True)
    assert not low["passed"] and "4.49" in low["missing"] and ">= 4.5" in low["missing"]
    assert "push a model" in assess(taxi, [], runnable=True)["missing"]
    both = by_key["unit5"]  # ML-Agents: both SnowballTarget and Pyramids
    assert not assess(both, _models(("SnowballTarget", 3, "poca")), runnable=True)["passed"]
    assert assess(both, _models(("ML-Agents-SnowballTarget", 3, "poca"), ("Pyramids", -1, "poca")),
                  runnable=True)["passed"]
    ppo = by_key["unit8.1"]  # push only, either env, but PPO
    assert not assess(ppo, _models(("CartPole-v1", 500, "reinforce")), runnable=True)["passed"]
    assert assess(ppo, _models(("LunarLander-v2", -300, "ppo")), runnable=True)["passed"]
    broken = [{**_models(("Taxi-v3", 0, "qlearning"))[0], "status": "error", "error": "corrupt", "result": None}]
    assert "could not be evaluated: corrupt" in assess(taxi, broken, runnable=True)["missing"]


def test_env_this_project_cannot_run_stays_open():
    soccer = next(a for a in ASSIGNMENTS if a.key == "unit7")
    row = assess(soccer, _models(("SoccerTwos", 0, "poca")), runnable=False)
    assert not row["passed"] and row["status"] == "unavailable" and "cannot run SoccerTwos yet" in row["missing"]
    # decided from the registry at run time: ML-Agents' SnowballTarget is not a deeprl env
    assert cert.env_runnable(("SnowballTarget", "ML-Agents-SnowballTarget")) is False
    assert cert.env_runnable(("Taxi-v3",)) is True


def test_progress_levels_from_the_database(all_runnable):
    keys = [a.key for a in ASSIGNMENTS]
    add_passing("ann", keys[:8])  # 8 of 11 = 72.7 %
    add_model("ann/taxi-weak", "Taxi-v3", 1.0)  # a weaker extra model does not hide the passing one
    p = progress("ann")
    assert (p["passed"], p["level"], p["needed_for_completion"]) == (8, None, 9)
    assert "8 of 11" in cert.missing_sentence(p) and "Unit 7 SoccerTwos" in cert.missing_sentence(p)
    add_passing("ann", keys[8:9])  # 9 of 11 = 81.8 %
    assert progress("ann")["level"] == "completion"
    add_passing("ann", keys[9:])
    p = progress("ann")
    assert (p["passed"], p["percent"], p["level"]) == (11, 100.0, "excellence")
    assert progress("nobody")["passed"] == 0
    with pytest.raises(UserError):
        progress("../etc")


def test_certificate_refused_below_80_percent(all_runnable, tmp_path):
    add_passing("bea", list(PASSING)[:8])
    with pytest.raises(UserError) as err:
        write_certificate(progress("bea"), "Bea", "Smith", tmp_path)
    msg = str(err.value)
    assert "8 of 11" in msg and "80 %" in msg and msg.count(". ") == 0  # one sentence
    assert not list(tmp_path.iterdir())


def test_certificate_pdf_and_png(all_runnable, tmp_path):
    from PIL import Image

    add_passing("cleo", list(PASSING))
    paths = write_certificate(progress("cleo"), "Cléo", "Dupont", tmp_path)
    pdf, png = paths
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"Certificate of Excellence" in data
    img = Image.open(io.BytesIO(png.read_bytes()))
    assert img.format == "PNG" and img.size[0] > img.size[1] > 1000
    # same input, same date -> same bytes (reportlab invariant mode)
    from datetime import date

    p = progress("cleo")
    assert cert.certificate_bytes(p, "A", "B", "pdf", date(2025, 5, 1)) == \
        cert.certificate_bytes(p, "A", "B", "pdf", date(2025, 5, 1))


def test_certificate_command(all_runnable, tmp_path, capsys):
    from deeprl.cli import main

    add_passing("dora", list(PASSING)[:7])
    assert main(["certificate", "dora", "--first-name", "Dora", "--last-name", "Lee", "--out", str(tmp_path),
                 "--no-index"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deeprl: error: dora has passed 7 of 11") and err.count("\n") == 1
    add_passing("dora", list(PASSING)[7:9])
    assert main(["certificate", "dora", "--first-name", "Dora", "--last-name", "Lee", "--out", str(tmp_path),
                 "--no-index"]) == 0
    assert "completion" in capsys.readouterr().out
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".pdf", ".png"]
    assert main(["progress", "dora", "--no-index"]) == 0
    out = capsys.readouterr().out
    assert "9 of 11 assignments passed" in out and "[PASS]" in out


def test_one_model_counts_for_one_assignment(all_runnable):
    add_model("eve/ppo-LunarLander", "LunarLander-v2", 250.0, algo="ppo")
    rows = {r["key"]: r for r in progress("eve")["assignments"]}
    assert rows["unit1"]["passed"] and not rows["unit8.1"]["passed"]
    assert "already counts for Unit 1" in rows["unit8.1"]["missing"]
    add_model("eve/ppo-CartPole", "CartPole-v1", 100.0, algo="ppo")
    assert progress("eve")["passed"] == 2
