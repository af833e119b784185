"""Certification: the course's assignments as data, a user's progress on them, and the certificate.

What counts: the 11 rows of the course's assignment table (shared/course/facts.md), each worth the same. The
course says "pass 80 % of the assignments" for completion and 100 % for excellence; with 11 rows that is 9 of
11 (81.8 %) and 11 of 11. A row passes when the user's namespace holds a model whose *latest* revision we
evaluated ourselves (the leaderboard's verified figures, never the card's claim) with result = mean - std at
or above the row's minimum; "push only" rows pass with any model for the env that loads and evaluates.
Each repo counts for one assignment at most (the course has a push per hands-on), checked in the table's order.
A row whose env this project cannot run yet (not in deeprl.envs' registry, checked at run time so new envs count
as soon as they are registered) stays open: nothing can be verified for it, and the progress output says so.
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import select

from deeprl import db
from deeprl.db import Evaluation, Repo
from deeprl.errors import UserError

COMPLETION_PERCENT = 80
EXCELLENCE_PERCENT = 100
COURSE = "Hugging Face Deep Reinforcement Learning Course"


@dataclass(frozen=True)
class Assignment:
    key: str
    unit: str
    title: str
    # each requirement is one env, given as the card tags that name it (the course's and ML-Agents' spellings)
    envs: tuple[tuple[str, ...], ...]
    minimum: float | None  # on result = mean - std; None: push only
    any_env: bool = False  # one model for any of the envs passes (8.1); otherwise every env needs one (unit 5)
    algos: tuple[str, ...] | None = None  # the model's algorithm must be one of these (8.1: PPO from scratch)

    @property
    def env_names(self) -> list[str]:
        return [alts[0] for alts in self.envs]

    def describe(self) -> str:
        envs = (" or " if self.any_env else " and ").join(self.env_names)
        need = "push a model" if self.minimum is None else f"result >= {self.minimum:g}"
        return f"Unit {self.unit} {self.title}: {envs}, {need}"


# facts.md, "Assignments": one entry per row, in the course's order
ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment("unit1", "1", "first agent (PPO)", (("LunarLander-v2",),), 200.0),
    Assignment("unit2-taxi", "2", "Q-Learning", (("Taxi-v3",),), 4.5),
    # the notebook expects a perfect mean of 1.0; rewards are 0/1, so mean 1.0 <=> std 0 <=> result 1.0
    Assignment("unit2-frozenlake", "2", "Q-Learning", (("FrozenLake-v1-4x4-no_slippery",),), 1.0),
    Assignment("unit3", "3", "Deep Q-Learning", (("SpaceInvadersNoFrameskip-v4",),), 200.0),
    Assignment("unit4-cartpole", "4", "REINFORCE", (("CartPole-v1",),), 350.0),
    Assignment("unit4-pixelcopter", "4", "REINFORCE", (("Pixelcopter-PLE-v0",),), 5.0),
    Assignment("unit5", "5", "ML-Agents", (("SnowballTarget", "ML-Agents-SnowballTarget"),
                                           ("Pyramids", "ML-Agents-Pyramids")), None),
    Assignment("unit6", "6", "Actor-critic (A2C)", (("PandaReachDense-v3",),), -3.5),
    Assignment("unit7", "7", "AI vs AI", (("SoccerTwos", "ML-Agents-SoccerTwos"),), None),
    # CleanRL's PPO defaults to CartPole-v1, the notebook pushes LunarLander-v2: either, trained by our PPO
    Assignment("unit8.1", "8.1", "PPO from scratch", (("LunarLander-v2",), ("CartPole-v1",)), None, any_env=True,
               algos=("ppo",)),
    Assignment("unit8.2", "8.2", "Sample Factory", (("doom_health_gathering_supreme",),), 5.0),
)


def certificate_level(passed: int, total: int) -> str | None:
    """'excellence' at 100 %, 'completion' at >= 80 %, else None (integer arithmetic: no float edge at 80 %)."""
    if total <= 0:
        return None
    if passed * 100 >= EXCELLENCE_PERCENT * total:
        return "excellence"
    if passed * 100 >= COMPLETION_PERCENT * total:
        return "completion"
    return None


def env_runnable(tags: tuple[str, ...]) -> bool:
    """Whether deeprl can build (so verify) this env: it is in the registry now."""
    from deeprl.envs.registry import get_spec

    for tag in tags:
        try:
            get_spec(tag)
            return True
        except UserError:
            continue
    return False


_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$")


def check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER.match(user) or ".." in user:
        raise UserError(f"'{user}' is not a hub username (letters, digits, '-', '_' or '.', 1-96 characters).")
    return user


def user_models(s, user: str, hub: str = "local") -> list[dict]:
    q = (select(Repo.repo_id, Evaluation.env, Evaluation.algo, Evaluation.result, Evaluation.mean_reward,
                Evaluation.std_reward, Evaluation.status, Evaluation.error, Evaluation.revision)
         .join(Evaluation, (Evaluation.repo_pk == Repo.id) & (Evaluation.revision == Repo.latest_revision))
         .where(Repo.hub == hub, Repo.user == user, Repo.active.is_(True))
         .order_by(Repo.repo_id))
    return [dict(r._mapping) for r in s.execute(q)]


def assess(assignment: Assignment, models: list[dict], runnable: bool | None = None) -> dict:
    """One row of a user's progress: passed or not, the best model, and what is missing."""
    runnable = env_runnable(tuple(t for alts in assignment.envs for t in alts)) if runnable is None else runnable
    reqs = []
    for alts in assignment.envs:
        ok = [m for m in models if m["status"] == "ok" and m["env"] in alts
              and (assignment.algos is None or m["algo"] in assignment.algos)]
        best = max(ok, key=lambda m: m["result"], default=None)
        met = best is not None and (assignment.minimum is None or best["result"] >= assignment.minimum)
        broken = [m for m in models if m["status"] != "ok" and m["env"] in alts]
        reqs.append({"env": alts[0], "best": best, "met": met, "broken": broken})
    met = [r for r in reqs if r["met"]]
    passed = runnable and (bool(met) if assignment.any_env else len(met) == len(reqs))
    used = [r["best"]["repo_id"] for r in met][:1 if assignment.any_env else None]
    candidates = [r["best"] for r in reqs if r["best"]]
    best = max(candidates, key=lambda m: m["result"], default=None)
    missing = None
    if not runnable:
        missing = (f"this project cannot run {' / '.join(assignment.env_names)} yet, so it cannot verify a model "
                   f"for it; it stays open")
    elif not passed:
        parts = []
        # any_env: one message for the whole row, about its best candidate if there is one
        todo = [max(reqs, key=lambda r: -1e300 if r["best"] is None else r["best"]["result"])] \
            if assignment.any_env else [r for r in reqs if not r["met"]]
        for r in todo:
            algo = f" trained with {'/'.join(assignment.algos)}" if assignment.algos else ""
            envs = " or ".join(assignment.env_names) if assignment.any_env and r["best"] is None else r["env"]
            if r["best"] is None:
                why = f"push a model{algo} for {envs}"
                if assignment.minimum is not None:
                    why += f" with result >= {assignment.minimum:g}"
                if r["broken"]:
                    why += f" ({r['broken'][0]['repo_id']} could not be evaluated: {r['broken'][0]['error']})"
            else:
                why = (f"best {envs} result is {r['best']['result']:.2f} ({r['best']['repo_id']}), "
                       f"it needs >= {assignment.minimum:g}")
            parts.append(why)
        missing = "; ".join(parts)
    return {"key": assignment.key, "unit": assignment.unit, "title": assignment.title,
            "envs": assignment.env_names, "any_env": assignment.any_env, "minimum": assignment.minimum,
            "algos": list(assignment.algos) if assignment.algos else None, "runnable": runnable,
            "passed": bool(passed), "status": "passed" if passed else ("open" if runnable else "unavailable"),
            "best_model": best["repo_id"] if best else None, "best_result": best["result"] if best else None,
            "missing": missing, "description": assignment.describe(), "used": used if passed else []}


def progress(user: str, *, hub: str = "local", url: str | None = None, models: list[dict] | None = None) -> dict:
    check_user(user)
    if models is None:
        with db.session(url) as s:
            models = user_models(s, user, hub)
    # each hands-on pushes its own model: a repo that passed one assignment does not pass a later one too
    # (a unit 1 PPO LunarLander model would otherwise also pass 8.1, PPO from scratch)
    rows, used = [], {}
    for a in ASSIGNMENTS:
        row = assess(a, [m for m in models if m["repo_id"] not in used])
        taken = [m for m in models if m["repo_id"] in used and m["status"] == "ok" and m["env"] in
                 {t for alts in a.envs for t in alts} and (a.algos is None or m["algo"] in a.algos)]
        if not row["passed"] and taken and row["missing"]:
            row["missing"] += (f" ({taken[0]['repo_id']} already counts for Unit {used[taken[0]['repo_id']]}; "
                               f"push a separate model)")
        if row["passed"]:
            used.update({r: a.unit for r in row["used"]})
        rows.append(row)
    passed = sum(r["passed"] for r in rows)
    total = len(rows)
    need = -(-COMPLETION_PERCENT * total // 100)  # ceil: 9 of 11
    return {"user": user, "hub": hub, "assignments": rows, "passed": passed, "total": total,
            "percent": round(100.0 * passed / total, 1), "level": certificate_level(passed, total),
            "needed_for_completion": need, "models": len(models),
            "unavailable": [r["key"] for r in rows if not r["runnable"]]}


def missing_sentence(p: dict) -> str:
    """One sentence: why `p` does not earn a certificate, naming the open assignments."""
    open_rows = [r for r in p["assignments"] if not r["passed"]]
    names = ", ".join(f"Unit {r['unit']} {'/'.join(r['envs'])}"
                      + (" (not runnable here yet)" if not r["runnable"] else "") for r in open_rows)
    return (f"{p['user']} has passed {p['passed']} of {p['total']} assignments ({p['percent']:g} %), and a "
            f"certificate needs {COMPLETION_PERCENT} % ({p['needed_for_completion']} of {p['total']}): still open "
            f"are {names}; run 'deeprl progress {p['user']}' for what each one needs.")


def format_progress(p: dict) -> str:
    lines = [f"Progress of {p['user']} ({p['hub']} hub, {p['models']} models): {p['passed']} of {p['total']} "
             f"assignments passed ({p['percent']:g} %)"]
    for r in p["assignments"]:
        mark = {"passed": "PASS", "open": "open", "unavailable": "n/a "}[r["status"]]
        best = f"  best: {r['best_model']} ({r['best_result']:.2f})" if r["best_model"] else ""
        lines.append(f"  [{mark}] {r['description']}{best}")
        if r["missing"]:
            lines.append(f"         missing: {r['missing']}")
    level = p["level"]
    if level:
        lines.append(f"Certificate of {level} available: deeprl certificate {p['user']} --first-name F --last-name L")
    else:
        lines.append(f"A certificate needs {p['needed_for_completion']} of {p['total']} assignments "
                     f"({COMPLETION_PERCENT} %).")
    if p["unavailable"]:
        lines.append(f"{len(p['unavailable'])} assignments need envs this project cannot run yet; they count as open.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The certificate (PDF with reportlab, PNG with Pillow, the same layout)


def check_name(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", (value or "").strip())
    if not value:
        raise UserError(f"The {what} is empty; give it with --{what.replace(' ', '-')}.")
    if len(value) > 60 or any(unicodedata.category(c).startswith("C") for c in value):
        raise UserError(f"The {what} must be at most 60 printable characters.")
    return value


def _fonts() -> dict[str, Path]:
    import reportlab

    # reportlab ships Bitstream Vera: the PDF and the PNG use the same TTF, with no system font needed
    base = Path(reportlab.__file__).parent / "fonts"
    return {"regular": base / "Vera.ttf", "bold": base / "VeraBd.ttf", "italic": base / "VeraIt.ttf"}


def _content(p: dict, first: str, last: str, when: date) -> dict:
    level = p["level"]
    passed = [r for r in p["assignments"] if r["passed"]]
    return {
        "title": f"Certificate of {'Excellence' if level == 'excellence' else 'Completion'}",
        "course": COURSE,
        "intro": "This certifies that",
        "name": f"{first} {last}",
        "user": f"(hub user {p['user']})",
        "body": f"passed {p['passed']} of {p['total']} assignments ({p['percent']:g} %) with agents re-evaluated "
                f"by the course protocol",
        "units": "Passed: " + ", ".join(f"Unit {r['unit']} {'/'.join(r['envs'])}" for r in passed),
        "date": when.strftime("%d %B %Y"),
        "level": level,
    }


def _pdf(c: dict) -> bytes:
    from reportlab.lib.colors import HexColor
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    fonts = _fonts()
    for key, path in fonts.items():
        name = f"DeeprlVera-{key}"
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(path)))
    w, h = landscape(A4)
    buf = io.BytesIO()
    cv = canvas.Canvas(buf, pagesize=(w, h), invariant=1)  # invariant: same input -> same bytes
    cv.setTitle(c["title"])
    cv.setAuthor("deeprl")
    accent = HexColor("#b8860b" if c["level"] == "excellence" else "#1f4e79")
    cv.setStrokeColor(accent)
    cv.setLineWidth(6)
    cv.rect(24, 24, w - 48, h - 48)
    cv.setLineWidth(1.5)
    cv.rect(36, 36, w - 72, h - 72)
    y = h - 120

    def line(text, font, size, color="#222222", gap=0):
        nonlocal y
        cv.setFillColor(HexColor(color))
        cv.setFont(f"DeeprlVera-{font}", size)
        for chunk in _wrap(text, font, size, w - 160):
            cv.drawCentredString(w / 2, y, chunk)
            y -= size * 1.3
        y -= gap

    line(c["title"], "bold", 34, "#1f4e79" if c["level"] != "excellence" else "#8b6508", 10)
    line(c["course"], "regular", 16, gap=26)
    line(c["intro"], "italic", 14, gap=6)
    line(c["name"], "bold", 30, gap=0)
    line(c["user"], "regular", 12, "#555555", 16)
    line(c["body"], "regular", 14, gap=10)
    line(c["units"], "regular", 10, "#444444", 10)
    cv.setFont("DeeprlVera-regular", 12)
    cv.setFillColor(HexColor("#222222"))
    cv.drawString(70, 70, c["date"])
    cv.drawRightString(w - 70, 70, "deeprl")
    cv.showPage()
    cv.save()
    return buf.getvalue()


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    words, lines, cur = text.split(), [], ""
    for word in words:
        trial = f"{cur} {word}".strip()
        if cur and stringWidth(trial, f"DeeprlVera-{font}", size) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


def _png(c: dict) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    scale = 2.0  # 842x595 pt page at 144 dpi: 1684x1190 px
    w, h = int(842 * scale), int(595 * scale)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    accent = "#b8860b" if c["level"] == "excellence" else "#1f4e79"
    d.rectangle([24 * scale, 24 * scale, w - 24 * scale, h - 24 * scale], outline=accent, width=int(6 * scale))
    d.rectangle([36 * scale, 36 * scale, w - 36 * scale, h - 36 * scale], outline=accent, width=int(1.5 * scale))
    fonts = _fonts()
    y = 120 * scale - 34 * scale

    def line(text, font, size, color="#222222", gap=0):
        nonlocal y
        f = ImageFont.truetype(str(fonts[font]), int(size * scale))
        for chunk in _wrap_px(d, text, f, w - 160 * scale):
            tw = d.textlength(chunk, font=f)
            d.text(((w - tw) / 2, y), chunk, font=f, fill=color)
            y += size * 1.3 * scale
        y += gap * scale

    line(c["title"], "bold", 34, "#1f4e79" if c["level"] != "excellence" else "#8b6508", 10)
    line(c["course"], "regular", 16, gap=26)
    line(c["intro"], "italic", 14, gap=6)
    line(c["name"], "bold", 30)
    line(c["user"], "regular", 12, "#555555", 16)
    line(c["body"], "regular", 14, gap=10)
    line(c["units"], "regular", 10, "#444444", 10)
    f = ImageFont.truetype(str(fonts["regular"]), int(12 * scale))
    d.text((70 * scale, h - 82 * scale), c["date"], font=f, fill="#222222")
    d.text((w - 70 * scale - d.textlength("deeprl", font=f), h - 82 * scale), "deeprl", font=f, fill="#222222")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _wrap_px(d, text, font, width) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for word in words:
        trial = f"{cur} {word}".strip()
        if cur and d.textlength(trial, font=font) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


def certificate_bytes(p: dict, first_name: str, last_name: str, fmt: str, when: date | None = None) -> bytes:
    """The certificate as PDF or PNG bytes; UserError (one sentence) below 80 %."""
    first, last = check_name(first_name, "first name"), check_name(last_name, "last name")
    if p["level"] is None:
        raise UserError(missing_sentence(p))
    c = _content(p, first, last, when or datetime.now(timezone.utc).date())
    if fmt == "pdf":
        return _pdf(c)
    if fmt == "png":
        return _png(c)
    raise UserError(f"Unknown certificate format '{fmt}'; use pdf or png.")


def certificate_filename(user: str, fmt: str) -> str:
    return f"deep-rl-course-certificate-{user}.{fmt}"


def write_certificate(p: dict, first_name: str, last_name: str, out_dir: str | Path = ".",
                      when: date | None = None) -> list[Path]:
    """Write the PDF and the PNG into out_dir; returns their paths."""
    from deeprl.modelio import atomic_write_bytes

    pdf = certificate_bytes(p, first_name, last_name, "pdf", when)
    png = certificate_bytes(p, first_name, last_name, "png", when)
    out = Path(out_dir).expanduser()
    paths = [out / certificate_filename(p["user"], "pdf"), out / certificate_filename(p["user"], "png")]
    atomic_write_bytes(paths[0], pdf)
    atomic_write_bytes(paths[1], png)
    return paths
