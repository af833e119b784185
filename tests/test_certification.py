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


@pytest.mark.parametrize(
    "passed,total,level",
    [
        (79, 100, None),
        (80, 100, "completion"),
        (99, 100, "completion"),
        (100, 100, "excellence"),
        (8, 11, None),
        (9, 11, "completion"),
        (10, 11, "completion"),
        (11, 11, "excellence"),
        (0, 11, None),
        (4, 5, "completion"),
        (0, 0, None),
    ],
)
def test_certificate_thresholds(passed, total, level):
    assert certificate_level(passed, total) == level


def _models(*items):
    return [
        {
            "repo_id": f"u/{i}",
            "env": env,
            "algo": algo,
            "result": r,
            "mean_reward": r,
            "std_reward": 0.0,
            "status": "ok",
            "error": None,
            "revision": "0" * 40,
        }
        for i, (env, r, algo) in enumerate(items)
    ]


def test_assess_minimums_push_only_and_algorithms():
    by_key = {a.key: a for a in ASSIGNMENTS}
    taxi = by_key["unit2-taxi"]
    assert assess(taxi, _models(("Taxi-v3", 4.5, "qlearning")), runnable=True)["passed"]  # >= minimum
    low = assess(taxi, _models(("Taxi-v3", 4.49, "qlearning")), runnable=True)
    assert not low["passed"] and "4.49" in low["missing"] and ">= 4.5" in low["missing"]
    assert "push a model" in assess(taxi, [], runnable=True)["missing"]
    both = by_key["unit5"]  # ML-Agents: both SnowballTarget and Pyramids
    assert not assess(both, _models(("SnowballTarget", 3, "poca")), runnable=True)["passed"]
    assert assess(both, _models(("ML-Agents-SnowballTarget", 3, "poca"), ("Pyramids", -1, "poca")), runnable=True)[
        "passed"
    ]
    ppo = by_key["unit8.1"]  # push only, either env, but PPO
    assert not assess(ppo, _models(("CartPole-v1", 500, "reinforce")), runnable=True)["passed"]
    assert assess(ppo, _models(("LunarLander-v2", -300, "ppo")), runnable=True)["passed"]
    broken = [{**_models(("Taxi-v3", 0, "qlearning"))[0], "status": "error", "error": "corrupt", "result": None}]
    assert "could not be evaluated: corrupt" in assess(taxi, broken, runnable=True)["missing"]


def test_env_this_project_cannot_run_stays_open():
    soccer = next(a for a in ASSIGNMENTS if a.key == "unit7")
    row = assess(soccer, _models(("SoccerTwos", 0, "poca")), runnable=False)
    assert not row["passed"] and row["status"] == "unavailable" and "cannot run SoccerTwos yet" in row["missing"]
    # decided from the registry at run time: an env deeprl does not build stays open
    assert cert.env_runnable(("SnowballTarget", "ML-Agents-SnowballTarget")) is True
    assert cert.env_runnable(("Huggy", "ML-Agents-Huggy")) is True  # Bonus 1, native since issue 21
    assert cert.env_runnable(("Worm", "ML-Agents-Worm")) is False
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
    assert cert.certificate_bytes(p, "A", "B", "pdf", date(2025, 5, 1)) == cert.certificate_bytes(
        p, "A", "B", "pdf", date(2025, 5, 1)
    )


def test_certificate_command(all_runnable, tmp_path, capsys):
    from deeprl.cli import main

    add_passing("dora", list(PASSING)[:7])
    assert (
        main(
            ["certificate", "dora", "--first-name", "Dora", "--last-name", "Lee", "--out", str(tmp_path), "--no-index"]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("deeprl: error: dora has passed 7 of 11") and err.count("\n") == 1
    add_passing("dora", list(PASSING)[7:9])
    assert (
        main(
            ["certificate", "dora", "--first-name", "Dora", "--last-name", "Lee", "--out", str(tmp_path), "--no-index"]
        )
        == 0
    )
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


# ---------------------------------------------------------------------------------------------------------
# Issue 15: models matched to assignments, algorithms, verification ids, layout and scripts


def _rows(user, **kw):
    return {r["key"]: r for r in progress(user, **kw)["assignments"]}


def test_ppo_and_reinforce_cartpole_pass_unit4_and_unit81_both(all_runnable):
    keep = [k for k in PASSING if k not in ("unit4-cartpole", "unit8.1", "unit7", "unit8.2")]
    add_passing("fay", keep)  # 7 rows
    add_model("fay/ppo-CartPole", "CartPole-v1", 500.0, algo="ppo", std=0.0)
    add_model("fay/reinforce-CartPole", "CartPole-v1", 500.0, algo="reinforce", std=0.0)
    p = progress("fay")
    rows = {r["key"]: r for r in p["assignments"]}
    assert rows["unit4-cartpole"]["passed"] and rows["unit4-cartpole"]["used"] == ["fay/reinforce-CartPole"]
    assert rows["unit8.1"]["passed"] and rows["unit8.1"]["used"] == ["fay/ppo-CartPole"]
    assert (p["passed"], p["level"]) == (9, "completion")
    assert [m["repo_id"] for m in rows["unit8.1"]["models"]] == ["fay/ppo-CartPole"]


def test_each_assignment_requires_its_algorithm(all_runnable):
    by_key = {a.key: a for a in ASSIGNMENTS}
    assert by_key["unit4-cartpole"].algos == ("reinforce",) and by_key["unit1"].algos == ("ppo",)
    assert by_key["unit2-taxi"].algos == ("qlearning",) and by_key["unit3"].algos == ("dqn",)
    assert by_key["unit6"].algos == ("a2c",) and set(by_key["unit8.2"].algos) == {"appo", "ppo"}
    row = assess(by_key["unit4-cartpole"], _models(("CartPole-v1", 500, "ppo")), runnable=True)
    assert not row["passed"]
    assert "trained with reinforce" in row["missing"] and "u/0 was trained with ppo" in row["missing"]
    assert not assess(by_key["unit3"], _models(("SpaceInvadersNoFrameskip-v4", 900, "ppo")), runnable=True)["passed"]
    assert not assess(by_key["unit1"], _models(("LunarLander-v2", 280, "a2c")), runnable=True)["passed"]
    assert assess(by_key["unit1"], _models(("LunarLander-v2", 280, "PPO")), runnable=True)["passed"]  # case
    # a PPO CartPole alone: 8.1 yes, Unit 4 no
    add_model("gil/ppo-CartPole", "CartPole-v1", 500.0, algo="ppo", std=0.0)
    rows = _rows("gil")
    assert rows["unit8.1"]["passed"] and not rows["unit4-cartpole"]["passed"]
    assert "was trained with ppo" in rows["unit4-cartpole"]["missing"]


def test_custom_and_error_rows_never_count(all_runnable):
    taxi = next(a for a in ASSIGNMENTS if a.key == "unit2-taxi")
    custom = [{**_models(("Taxi-v3", 9.0, "qlearning"))[0], "status": "custom", "error": "custom task"}]
    row = assess(taxi, custom, runnable=True)
    assert not row["passed"] and "changes the task" in row["missing"] and row["best_model"] is None
    errored = [{**_models(("Taxi-v3", 9.0, "qlearning"))[0], "status": "error", "error": "boom"}]
    assert not assess(taxi, errored, runnable=True)["passed"]
    p = progress("hal", models=custom + [{**errored[0], "repo_id": "u/9"}])
    assert p["passed"] == 0
    add_model("ivy/taxi", "Taxi-v3", 9.0, status="custom", error="config changes the task")
    add_model("ivy/lunar", "LunarLander-v2", 9.0, status="error", error="corrupt", algo="ppo")
    assert progress("ivy")["passed"] == 0


def _assignment(key, envs, any_env=False, minimum=None):
    return cert.Assignment(key, key, key, tuple((e,) for e in envs), minimum, any_env=any_env)


def test_allocation_is_a_maximum_matching_over_whole_rows():
    def m(repo, env, result=1.0):
        return {"repo_id": repo, "env": env, "algo": "x", "result": result, "status": "ok", "revision": "r"}

    # greedy in table order gives A the best model (X) and leaves B nothing; the matching moves A to Y
    a, b = _assignment("A", ["X", "Y"], any_env=True), _assignment("B", ["X"])
    got = cert.allocate([a, b], [m("x1", "X", 9), m("y1", "Y", 1)])
    assert {k: [x["repo_id"] for x in v] for k, v in got.items()} == {"A": ["y1"], "B": ["x1"]}
    # rows, not requirements: E needs X and Y; F needs X, G needs Y: F and G (2 rows) beat E (1 row)
    e, f, g = _assignment("E", ["X", "Y"]), _assignment("F", ["X"]), _assignment("G", ["Y"])
    assert set(cert.allocate([e, f, g], [m("x1", "X"), m("y1", "Y")])) == {"F", "G"}
    # with a model per requirement, all three pass, each repo once
    got = cert.allocate([e, f, g], [m("x1", "X"), m("y1", "Y"), m("x2", "X"), m("y2", "Y")])
    used = [x["repo_id"] for v in got.values() for x in v]
    assert set(got) == {"E", "F", "G"} and sorted(used) == ["x1", "x2", "y1", "y2"]
    # a row that is not runnable takes no model
    assert cert.allocate([a, b], [m("x1", "X")], {"B": False}) == {"A": [m("x1", "X")]}


def test_taken_model_is_named_in_the_missing_sentence(all_runnable):
    add_model("jo/ppo-LunarLander", "LunarLander-v2", 250.0, algo="ppo")
    row = _rows("jo")["unit8.1"]
    assert "jo/ppo-LunarLander would pass it but already counts for Unit 1" in row["missing"]
    assert "push a separate model trained with ppo" in row["missing"]


def test_excellence_reachable_once_the_envs_are_registered(monkeypatch):
    from deeprl.envs import registry

    add_passing("kim", list(PASSING))
    p = progress("kim")  # Unit 5's and 8.2's envs are registered: every row can be verified
    assert (p["passed"], p["level"], p["unavailable"]) == (11, "excellence", [])
    # without an env the row cannot be verified and stays open; Unit 5 needs both of its envs
    monkeypatch.delitem(registry._REGISTRY, "Pyramids")
    unit5 = next(a for a in ASSIGNMENTS if a.key == "unit5")
    assert not cert.assignment_runnable(unit5)
    monkeypatch.delitem(registry._REGISTRY, "doom_health_gathering_supreme")
    p = progress("kim")
    assert p["level"] == "completion" and set(p["unavailable"]) == {"unit5", "unit8.2"}


def _pdf_text(data: bytes) -> bytes:
    """The PDF's content streams, inflated (reportlab writes ASCII text of its first font subset as is)."""
    import re
    import zlib

    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    return b"\n".join(out)


def test_verification_id_printed_and_verifiable(all_runnable, tmp_path, capsys):
    from datetime import date

    from PIL import Image

    from deeprl import db

    add_passing("lou", list(PASSING)[:9])
    p = progress("lou")
    when = date(2025, 5, 1)
    cid = cert.issue_certificate(p, "Lou", "Reed", when)
    assert cert._CERT_ID.match(cid)
    pdf, png = write_certificate(p, "Lou", "Reed", tmp_path, when)
    assert cid.encode() in _pdf_text(pdf.read_bytes())
    assert f"/certificates/{cid}".encode() in _pdf_text(pdf.read_bytes())
    meta = Image.open(png).text
    assert meta["Verification-Id"] == cid and meta["Verification-Path"] == f"/certificates/{cid}"
    assert any(b.key == "verify" and cid in b.text for b in cert.layout(cert._content(p, "Lou", "Reed", when, cid)))
    # issuing again (same person, level, results, day) is the same certificate, not a new row
    assert cert.issue_certificate(p, "Lou", "Reed", when) == cid
    cert.certificate_bytes(p, "Lou", "Reed", "png", when)
    with db.session() as s:
        assert s.query(db.Certificate).count() == 1
    v = cert.verify_certificate(cid)
    assert (v["id"], v["user"], v["first_name"], v["last_name"], v["level"], v["hub"]) == (
        cid,
        "lou",
        "Lou",
        "Reed",
        "completion",
        "local",
    )
    assert v["issued_at"].startswith("2025-05-01")
    assert sorted(r["unit"] for r in v["results"]) == sorted(
        r["unit"] for r in p["assignments"] if r["passed"] for _ in r["used"]
    )
    first = v["results"][0]
    assert set(first) == {"unit", "title", "env", "repo_id", "revision", "result", "minimum"}
    assert first["repo_id"].startswith("lou/") and len(first["revision"]) == 40
    assert cert.verify_certificate(cid.upper()) == v
    # another name or another day: another id
    assert cert.issue_certificate(p, "Lou", "Reeds", when) != cid
    assert cert.issue_certificate(p, "Lou", "Reed", date(2025, 5, 2)) != cid
    for bad in ["", "x", "../../etc/passwd", "a" * 21, "a" * 10000, "abcdefghij0123456789", None, 42, "é" * 20]:
        assert cert.verify_certificate(bad) is None
    assert cert.verify_certificate("a" * 20) is None  # the right shape, never issued
    # the command prints the id and how to check it
    from deeprl.cli import main

    assert (
        main(["certificate", "lou", "--first-name", "Lou", "--last-name", "Reed", "--out", str(tmp_path), "--no-index"])
        == 0
    )
    out = capsys.readouterr().out
    new_id = out.split("Verification id: ")[1].split(";")[0]
    assert cert.verify_certificate(new_id)["first_name"] == "Lou" and f"/certificates/{new_id}" in out
    assert "deeprl serve" in out


def _check_layout(boxes):
    for i, a in enumerate(boxes):
        assert cert.FRAME < a.x0 < a.x1 < cert.PAGE_W - cert.FRAME, a
        assert cert.FRAME < a.top < a.bottom < cert.PAGE_H - cert.FRAME, a
        for b in boxes[i + 1 :]:
            assert not a.intersects(b), (a.key, a.text, b.key, b.text)


def _ink_boxes(png_bytes, boxes, tol=3):
    """Every box's area in the PNG has ink, and the glyphs Pillow draws stay inside their box."""
    from PIL import Image, ImageDraw

    img = Image.open(io.BytesIO(png_bytes)).convert("L")
    d = ImageDraw.Draw(Image.new("L", (1, 1)))
    s = cert.PNG_SCALE
    for box in boxes:
        region = img.crop((int(box.x0 * s), int(box.top * s), int(box.x1 * s) + 1, int(box.bottom * s) + 1))
        assert region.getextrema()[0] < 128, f"blank: {box.text}"
        for font, text, x, _ in box.runs:
            for offset, cluster in cert._clusters(text, font, box.size):
                left, t, r, b = d.textbbox(
                    ((x + offset) * s, box.baseline * s), cluster, font=cert._pil_font(font, box.size * s), anchor="ls"
                )
                assert box.top * s - tol <= t and b <= box.bottom * s + tol, (box.text, cluster)
                assert box.x0 * s - tol <= left and r <= box.x1 * s + tol, (box.text, cluster)


def test_long_names_wrap_without_overlapping(all_runnable):
    from datetime import date

    add_passing("max", list(PASSING))
    p = progress("max")
    for first, last in [
        ("Maximiliana-Wilhelmina Konstantinopolitanische", "Von Und Zu Hohenzollern-Sigmaringens"),
        ("W" * 60, "M" * 60),
        ("Ann", "Li"),
    ]:
        c = cert._content(p, first, last, date(2025, 5, 1), "a" * 20)
        boxes = cert.layout(c)
        names = [b for b in boxes if b.key == "name"]
        assert "".join(b.text for b in names).replace(" ", "") == (first + last).replace(" ", "")
        if len(first) > 20:
            assert len(names) >= 2
        _check_layout(boxes)
        assert {"title", "name", "units", "date", "verify"} <= {b.key for b in boxes}
        _ink_boxes(cert._png(c), boxes)


def test_cjk_and_other_scripts_render(all_runnable):
    from datetime import date

    fonts = cert.cjk_fonts()
    if not fonts:
        pytest.skip("no CJK TrueType font installed (apt-get install fonts-wqy-zenhei)")
    add_passing("ming", list(PASSING))
    p = progress("ming")
    c = cert._content(p, "王小明", "山田 太郎 김민준", date(2025, 5, 1), "b" * 20)
    boxes = cert.layout(c)
    _check_layout(boxes)
    name = [b for b in boxes if b.key == "name"]
    runs = [(f, t) for b in name for f, t, _, _ in b.runs]
    for ch in "王小明山田太郎김민준":
        font = next(f for f, t in runs if ch in t)
        assert ord(ch) in cert._load(font).face.charToGlyph, ch  # a real glyph, not the notdef box
    _ink_boxes(cert._png(c), name)
    cjk = next(f for f, t in runs if "王" in t)
    assert cert._load(cjk).face.name in cert._pdf(c)  # the CJK font is embedded (as a subset)
    # Greek and Polish come from a font that has them too (DejaVu when installed)
    c = cert._content(p, "Ελένη", "Łukasz", date(2025, 5, 1), "b" * 20)
    for b in cert.layout(c):
        if b.key == "name":
            for f, t, _, _ in b.runs:
                for ch in t.replace(" ", ""):
                    if cert._chain("bold")[-1].path.endswith("DejaVuSans-Bold.ttf"):
                        assert ord(ch) in cert._load(f).face.charToGlyph, ch
