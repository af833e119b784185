"""Certification: the course's assignments as data, a user's progress on them, and the certificate.

What counts: the 11 rows of the course's assignment table (shared/course/facts.md), each worth the same. The
course says "pass 80 % of the assignments" for completion and 100 % for excellence; with 11 rows that is 9 of
11 (81.8 %) and 11 of 11. A row passes when the user's namespace holds a model, trained with the row's
algorithm, whose *latest* revision we evaluated ourselves (the leaderboard's verified figures, never the card's
claim; status "ok" only: an "error" or "custom" evaluation never counts) with result = mean - std at or above the
row's minimum; "push only" rows pass with any such model that loads and evaluates.

Each repo counts for one requirement at most (the course has a push per hands-on). Models are assigned to
assignments by an exact search, not greedily: among the rows that could pass on their own, the largest set of
rows whose requirements can all be met at once by distinct models (a bipartite matching, requirements x repos,
by augmenting paths) passes. A row with several requirements (Unit 5: SnowballTarget AND Pyramids) passes only
when every one is matched, so the search is over sets of rows, largest first (table order breaks ties); with
11 rows that is at most 2^11 tiny matchings, and in practice one or a few. Within a matching each requirement
tries its best-scoring model first.

A row whose env this project cannot run yet (not in deeprl.envs' registry, checked at run time so new envs count
as soon as they are registered) stays open: nothing can be verified for it, and the progress output says so.

Stable-Baselines3 repos (the zip as the course's `package_to_hub` pushes it, verified by converting it unpickled,
deeprl.sb3) count for the rows whose hands-on trains with SB3, Units 1, 3 and 6, exactly as deeprl's own models
do. They do not count elsewhere: Unit 8.1 is PPO written from scratch, which a library's PPO is not.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import itertools
import json
import re
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from deeprl import db
from deeprl.db import Evaluation, Repo
from deeprl.errors import UserError

if TYPE_CHECKING:
    from PIL import ImageFont
    from sqlalchemy.orm import Session

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
    algos: tuple[str, ...] = ()  # the model's algorithm (config.json "algo") must be one of these
    sb3: bool = False  # an SB3-format repo counts too (the units whose notebook trains with Stable-Baselines3)

    @property
    def env_names(self) -> list[str]:
        return [alts[0] for alts in self.envs]

    def requirements(self) -> list[tuple[str, ...]]:
        """One tuple of acceptable env tags per model the row needs."""
        if self.any_env:
            return [tuple(t for alts in self.envs for t in alts)]
        return list(self.envs)

    def describe(self) -> str:
        envs = (" or " if self.any_env else " and ").join(self.env_names)
        need = "push a model" if self.minimum is None else f"result >= {self.minimum:g}"
        algo = f", trained with {'/'.join(self.algos)}" if self.algos else ""
        return f"Unit {self.unit} {self.title}: {envs}, {need}{algo}"


# facts.md, "Assignments": one entry per row, in the course's order. The algorithm is the one the row teaches;
# a second spelling only where the course itself trains it so (ML-Agents' PPO/POCA, Sample Factory's APPO).
ASSIGNMENTS: tuple[Assignment, ...] = (
    Assignment("unit1", "1", "first agent (PPO)", (("LunarLander-v2",),), 200.0, algos=("ppo",), sb3=True),
    Assignment("unit2-taxi", "2", "Q-Learning", (("Taxi-v3",),), 4.5, algos=("qlearning",)),
    # the notebook expects a perfect mean of 1.0; rewards are 0/1, so mean 1.0 <=> std 0 <=> result 1.0
    Assignment("unit2-frozenlake", "2", "Q-Learning", (("FrozenLake-v1-4x4-no_slippery",),), 1.0, algos=("qlearning",)),
    Assignment("unit3", "3", "Deep Q-Learning", (("SpaceInvadersNoFrameskip-v4",),), 200.0, algos=("dqn",), sb3=True),
    Assignment("unit4-cartpole", "4", "REINFORCE", (("CartPole-v1",),), 350.0, algos=("reinforce",)),
    Assignment("unit4-pixelcopter", "4", "REINFORCE", (("Pixelcopter-PLE-v0",),), 5.0, algos=("reinforce",)),
    # ML-Agents trains both with PPO (Pyramids adds RND curiosity); its trainer_type may also be poca
    Assignment(
        "unit5",
        "5",
        "ML-Agents",
        (("SnowballTarget", "ML-Agents-SnowballTarget"), ("Pyramids", "ML-Agents-Pyramids")),
        None,
        algos=("ppo", "poca"),
    ),
    Assignment("unit6", "6", "Actor-critic (A2C)", (("PandaReachDense-v3",),), -3.5, algos=("a2c",), sb3=True),
    # the course trains POCA with self-play; deeprl's self-play PPO is `selfplay`
    Assignment("unit7", "7", "AI vs AI", (("SoccerTwos", "ML-Agents-SoccerTwos"),), None, algos=("selfplay", "poca")),
    # CleanRL's PPO defaults to CartPole-v1, the notebook pushes LunarLander-v2: either, trained by PPO
    Assignment(
        "unit8.1",
        "8.1",
        "PPO from scratch",
        (("LunarLander-v2",), ("CartPole-v1",)),
        None,
        any_env=True,
        algos=("ppo",),
    ),
    # Sample Factory's asynchronous PPO (APPO)
    Assignment("unit8.2", "8.2", "Sample Factory", (("doom_health_gathering_supreme",),), 5.0, algos=("appo", "ppo")),
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


def assignment_runnable(a: Assignment) -> bool:
    """Every requirement's env can be built (any of them for an any_env row)."""
    return all(env_runnable(alts) for alts in a.requirements())


_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?$")


def check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER.match(user) or ".." in user:
        raise UserError(f"'{user}' is not a hub username (letters, digits, '-', '_' or '.', 1-96 characters).")
    return user


def user_models(s: Session, user: str, hub: str = "local") -> list[dict]:
    q = (
        select(
            Repo.repo_id,
            Evaluation.env,
            Evaluation.algo,
            Evaluation.result,
            Evaluation.mean_reward,
            Evaluation.std_reward,
            Evaluation.status,
            Evaluation.error,
            Evaluation.revision,
            Evaluation.files,
        )
        .join(Evaluation, (Evaluation.repo_pk == Repo.id) & (Evaluation.revision == Repo.latest_revision))
        .where(Repo.hub == hub, Repo.user == user, Repo.active.is_(True))
        .order_by(Repo.repo_id)
    )
    models = []
    for r in s.execute(q):
        m = dict(r._mapping)
        m["format"] = repo_format(m.pop("files"))
        models.append(m)
    return models


def repo_format(files: str | None) -> str:
    """'stable-baselines3' or 'deeprl', from a revision's stored file list (the rule the verifier goes by)."""
    from deeprl.leaderboard.sandbox import repo_format as by_names

    try:
        listed = json.loads(files or "[]")
    except ValueError:
        listed = []
    names = (
        [f[0] for f in listed if isinstance(f, list) and f and isinstance(f[0], str)]
        if isinstance(listed, list)
        else []
    )
    return by_names(names)


# ---------------------------------------------------------------------------------------------------------
# Which model counts for which assignment


def _algo_ok(a: Assignment, m: dict) -> bool:
    """The model's algorithm is the row's, and its format one the row takes (SB3's only where the unit uses SB3)."""
    if m.get("format") == "stable-baselines3" and not a.sb3:
        return False
    return not a.algos or str(m.get("algo") or "").lower() in a.algos


def _verified(m: dict) -> bool:
    return m.get("status") == "ok" and m.get("result") is not None


def _candidates(a: Assignment, alts: tuple[str, ...], models: list[dict]) -> list[dict]:
    """The models that would meet this requirement on their own, best result first."""
    ok = [
        m
        for m in models
        if _verified(m) and m["env"] in alts and _algo_ok(a, m) and (a.minimum is None or m["result"] >= a.minimum)
    ]
    return sorted(ok, key=lambda m: (-m["result"], m["repo_id"]))


def _match(reqs: list[list[dict]]) -> list[dict] | None:
    """A distinct model for every requirement (Kuhn's augmenting paths), or None when there is none."""
    owner: dict[str, int] = {}  # repo_id -> requirement index
    chosen: dict[int, dict] = {}

    def augment(i: int, seen: set) -> bool:
        for m in reqs[i]:
            r = m["repo_id"]
            if r in seen:
                continue
            seen.add(r)
            if r not in owner or augment(owner[r], seen):
                owner[r] = i
                chosen[i] = m
                return True
        return False

    for i in range(len(reqs)):
        if not augment(i, set()):
            return None
    return [chosen[i] for i in range(len(reqs))]


def allocate(
    assignments: Iterable[Assignment], models: list[dict], runnable: dict[str, bool] | None = None
) -> dict[str, list[dict]]:
    """The passed assignments, key -> one model per requirement: the most assignments that can pass together."""
    runnable = runnable or {}
    reqs = {a.key: [_candidates(a, alts, models) for alts in a.requirements()] for a in assignments}
    possible = [a for a in assignments if runnable.get(a.key, True) and all(reqs[a.key])]
    for size in range(len(possible), 0, -1):
        for subset in itertools.combinations(possible, size):  # table order: earlier rows win ties
            flat = [c for a in subset for c in reqs[a.key]]
            got = _match(flat)
            if got is None:
                continue
            out, i = {}, 0
            for a in subset:
                n = len(reqs[a.key])
                out[a.key] = got[i : i + n]
                i += n
            return out
    return {}


def _model_summary(m: dict) -> dict:
    return {
        "repo_id": m["repo_id"],
        "env": m["env"],
        "algo": m.get("algo"),
        "revision": m.get("revision"),
        "result": m.get("result"),
    }


def _why_not(a: Assignment, alts: tuple[str, ...], models: list[dict], taken: dict[str, str]) -> str:
    """One clause: what this requirement of an unpassed row lacks."""
    env = " or ".join(a.env_names) if a.any_env else alts[0]
    algo = f" trained with {'/'.join(a.algos)}" if a.algos else ""
    cands = _candidates(a, alts, models)
    if cands:
        free = [c for c in cands if c["repo_id"] not in taken]
        if not free:
            c = cands[0]
            return (
                f"{c['repo_id']} would pass it but already counts for {taken[c['repo_id']]}; push a separate "
                f"model{algo} for {env}"
            )
        return f"{free[0]['repo_id']} passes {env}, but the row needs a distinct model for each of its envs"
    here = [m for m in models if m["env"] in alts]
    right = sorted((m for m in here if _verified(m) and _algo_ok(a, m)), key=lambda m: -m["result"])
    if right:  # right env and algorithm, result too low
        return f"best {env} result is {right[0]['result']:.2f} ({right[0]['repo_id']}), it needs >= {a.minimum:g}"
    why = f"push a model{algo} for {env}"
    if a.minimum is not None:
        why += f" with result >= {a.minimum:g}"
    notes = []
    wrong = [m for m in here if _verified(m) and not _algo_ok(a, m)]
    if wrong and wrong[0].get("format") == "stable-baselines3" and not a.sb3:
        notes.append(
            f"{wrong[0]['repo_id']} is a Stable-Baselines3 model, which counts for Units 1, 3 and 6 only, not for "
            f"Unit {a.unit} {a.title}"
        )
    elif wrong:
        notes.append(
            f"{wrong[0]['repo_id']} was trained with {wrong[0].get('algo') or 'an unknown algorithm'}, "
            f"which does not count for Unit {a.unit}"
        )
    custom = [m for m in here if m.get("status") == "custom"]
    if custom:
        notes.append(f"{custom[0]['repo_id']} changes the task in its config, so its result does not count")
    broken = [m for m in here if m.get("status") not in ("ok", "custom")]
    if broken:
        notes.append(f"{broken[0]['repo_id']} could not be evaluated: {broken[0].get('error')}")
    return why + (f" ({'; '.join(notes)})" if notes else "")


def _row(a: Assignment, models: list[dict], runnable: bool, matched: list[dict] | None, taken: dict[str, str]) -> dict:
    passed = runnable and matched is not None
    used = matched if runnable and matched is not None else []  # the models that pass it
    best: dict | None
    if passed:
        best = max(used, key=lambda m: m["result"])
    else:
        pool = [
            m for m in models if _verified(m) and _algo_ok(a, m) and any(m["env"] in alts for alts in a.requirements())
        ]
        best = max(pool, key=lambda m: m["result"], default=None)
    missing = None
    if not runnable:
        missing = (
            f"this project cannot run {' / '.join(a.env_names)} yet, so it cannot verify a model for it; it stays open"
        )
    elif not passed:
        reqs = a.requirements()
        # a requirement is done when it has a model of its own that no other passed row uses
        open_reqs = [
            alts for alts in reqs if not [c for c in _candidates(a, alts, models) if c["repo_id"] not in taken]
        ] or reqs
        missing = "; ".join(_why_not(a, alts, models, taken) for alts in open_reqs)
    return {
        "key": a.key,
        "unit": a.unit,
        "title": a.title,
        "envs": a.env_names,
        "any_env": a.any_env,
        "minimum": a.minimum,
        "algos": list(a.algos) or None,
        "runnable": runnable,
        "passed": bool(passed),
        "status": "passed" if passed else ("open" if runnable else "unavailable"),
        "best_model": best["repo_id"] if best else None,
        "best_result": best["result"] if best else None,
        "missing": missing,
        "description": a.describe(),
        "used": [m["repo_id"] for m in used],
        "models": [_model_summary(m) for m in used],
    }


def assess(assignment: Assignment, models: list[dict], runnable: bool | None = None) -> dict:
    """One row of a user's progress on its own (no other row competes for the models)."""
    runnable = assignment_runnable(assignment) if runnable is None else runnable
    got = allocate([assignment], models, {assignment.key: runnable}).get(assignment.key)
    return _row(assignment, models, runnable, got, {})


def progress(user: str, *, hub: str = "local", url: str | None = None, models: list[dict] | None = None) -> dict:
    check_user(user)
    if models is None:
        with db.session(url) as s:
            models = user_models(s, user, hub)
    runnable = {a.key: assignment_runnable(a) for a in ASSIGNMENTS}
    got = allocate(ASSIGNMENTS, models, runnable)
    taken = {m["repo_id"]: f"Unit {a.unit} {a.title}" for a in ASSIGNMENTS for m in got.get(a.key, [])}
    rows = []
    for a in ASSIGNMENTS:
        mine = {m["repo_id"] for m in got.get(a.key, [])}
        rows.append(_row(a, models, runnable[a.key], got.get(a.key), {r: u for r, u in taken.items() if r not in mine}))
    passed = sum(r["passed"] for r in rows)
    total = len(rows)
    need = -(-COMPLETION_PERCENT * total // 100)  # ceil: 9 of 11
    return {
        "user": user,
        "hub": hub,
        "assignments": rows,
        "passed": passed,
        "total": total,
        "percent": round(100.0 * passed / total, 1),
        "level": certificate_level(passed, total),
        "needed_for_completion": need,
        "models": len(models),
        "unavailable": [r["key"] for r in rows if not r["runnable"]],
    }


def missing_sentence(p: dict) -> str:
    """One sentence: why `p` does not earn a certificate, naming the open assignments."""
    open_rows = [r for r in p["assignments"] if not r["passed"]]
    names = ", ".join(
        f"Unit {r['unit']} {'/'.join(r['envs'])}" + (" (not runnable here yet)" if not r["runnable"] else "")
        for r in open_rows
    )
    return (
        f"{p['user']} has passed {p['passed']} of {p['total']} assignments ({p['percent']:g} %), and a "
        f"certificate needs {COMPLETION_PERCENT} % ({p['needed_for_completion']} of {p['total']}): still open "
        f"are {names}; run 'deeprl progress {p['user']}' for what each one needs."
    )


def format_progress(p: dict) -> str:
    lines = [
        f"Progress of {p['user']} ({p['hub']} hub, {p['models']} models): {p['passed']} of {p['total']} "
        f"assignments passed ({p['percent']:g} %)"
    ]
    for r in p["assignments"]:
        mark = {"passed": "PASS", "open": "open", "unavailable": "n/a "}[r["status"]]
        if r["passed"] and r.get("used"):
            best = f"  with: {', '.join(r['used'])}"
        else:
            best = f"  best: {r['best_model']} ({r['best_result']:.2f})" if r["best_model"] else ""
        lines.append(f"  [{mark}] {r['description']}{best}")
        if r["missing"]:
            lines.append(f"         missing: {r['missing']}")
    level = p["level"]
    if level:
        lines.append(f"Certificate of {level} available: deeprl certificate {p['user']} --first-name F --last-name L")
    else:
        lines.append(
            f"A certificate needs {p['needed_for_completion']} of {p['total']} assignments ({COMPLETION_PERCENT} %)."
        )
    if p["unavailable"]:
        lines.append(f"{len(p['unavailable'])} assignments need envs this project cannot run yet; they count as open.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Issuing and verifying: the verification id is a hash of what the certificate states, so issuing the same
# person the same level on the same results on the same day gives the same id (and one row), not a row a click.

_CERT_ID = re.compile(r"^[a-z2-7]{20}$")


def certificate_results(p: dict) -> list[dict]:
    """The verified results a certificate is issued on: one entry per model that passed an assignment."""
    out = []
    for r in p["assignments"]:
        if not r["passed"]:
            continue
        for m in r.get("models") or [{"repo_id": repo, "env": r["envs"][0]} for repo in r.get("used") or []]:
            out.append(
                {
                    "unit": r["unit"],
                    "title": r["title"],
                    "env": m.get("env"),
                    "repo_id": m["repo_id"],
                    "revision": m.get("revision"),
                    "result": m.get("result"),
                    "minimum": r["minimum"],
                }
            )
    return out


def certificate_id(p: dict, first: str, last: str, when: date) -> str:
    payload = json.dumps(
        {
            "hub": p.get("hub", "local"),
            "user": p["user"],
            "first_name": first,
            "last_name": last,
            "level": p["level"],
            "date": when.isoformat(),
            "results": certificate_results(p),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return base64.b32encode(hashlib.sha256(payload.encode()).digest()).decode().lower()[:20]


def issue_certificate(
    p: dict, first_name: str, last_name: str, when: date | None = None, *, url: str | None = None
) -> str:
    """Record the certificate (once) and return its verification id; UserError (one sentence) below 80 %."""
    from sqlalchemy.exc import IntegrityError

    first, last = check_name(first_name, "first name"), check_name(last_name, "last name")
    if p["level"] is None:
        raise UserError(missing_sentence(p))
    now = datetime.now(UTC)
    when = when or now.date()
    cid = certificate_id(p, first, last, when)
    try:
        with db.session(url) as s:
            if s.get(db.Certificate, cid) is None:
                issued = now if when == now.date() else datetime.combine(when, time(0), tzinfo=UTC)
                s.add(
                    db.Certificate(
                        id=cid,
                        hub=p.get("hub", "local"),
                        user=p["user"],
                        first_name=first,
                        last_name=last,
                        level=p["level"],
                        issued_at=issued,
                        results=json.dumps(certificate_results(p)),
                    )
                )
    except IntegrityError:  # a concurrent click inserted the same id first: that row is this certificate
        pass
    return cid


def verify_certificate(cert_id: str, *, url: str | None = None) -> dict | None:
    """What a certificate states, from the database; None for an id of the wrong shape or one never issued."""
    if not isinstance(cert_id, str) or len(cert_id) > 64:
        return None
    cid = cert_id.strip().lower()
    if not _CERT_ID.match(cid):
        return None
    with db.session(url) as s:
        row = s.get(db.Certificate, cid)
        if row is None:
            return None
        try:
            results = json.loads(row.results or "[]")
        except ValueError:
            results = []
        keys = ("unit", "title", "env", "repo_id", "revision", "result", "minimum")
        results = (
            [{k: r.get(k) for k in keys} for r in results if isinstance(r, dict)] if isinstance(results, list) else []
        )
        issued = row.issued_at
        return {
            "id": row.id,
            "user": row.user,
            "first_name": row.first_name,
            "last_name": row.last_name,
            "level": row.level,
            "issued_at": issued.isoformat() if issued else None,
            "hub": row.hub,
            "results": results,
        }


# ---------------------------------------------------------------------------------------------------------
# The certificate (PDF with reportlab, PNG with Pillow, one layout in points computed with the fonts' metrics).
# Text is split into runs by font: reportlab's Bitstream Vera first (no system font needed for Latin), then
# DejaVu Sans (Greek, Cyrillic, extended Latin), then a CJK TrueType font (Debian's fonts-wqy-zenhei), then
# whatever fontconfig finds for a character. PDF embedding needs TrueType outlines (reportlab cannot embed CFF,
# so Noto CJK's .ttc is no use here).


def check_name(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", (value or "").strip())
    if not value:
        raise UserError(f"The {what} is empty; give it with --{what.replace(' ', '-')}.")
    if len(value) > 60 or any(unicodedata.category(c).startswith("C") for c in value):
        raise UserError(f"The {what} must be at most 60 printable characters.")
    return value


@dataclass(frozen=True)
class Font:
    path: str
    index: int = 0

    @property
    def name(self) -> str:
        return "Deeprl-" + hashlib.sha1(f"{self.path}#{self.index}".encode()).hexdigest()[:12]


_VERA = {"regular": "Vera.ttf", "bold": "VeraBd.ttf", "italic": "VeraIt.ttf"}
_DEJAVU = {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf", "italic": "DejaVuSans-Oblique.ttf"}
_FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/local/share/fonts", "/usr/share/fonts")
# TrueType-outline CJK fonts Debian packages (fonts-wqy-zenhei first: the one .ci/run installs)
_CJK_KNOWN = (
    "wqy/wqy-zenhei.ttc",
    "wqy/wqy-microhei.ttc",
    "droid/DroidSansFallbackFull.ttf",
    "arphic/uming.ttc",
    "arphic/ukai.ttc",
    "unfonts-core/UnDotum.ttf",
    "nanum/NanumGothic.ttf",
)


def _fonts() -> dict[str, Path]:
    import reportlab

    base = Path(reportlab.__file__).parent / "fonts"
    return {style: base / name for style, name in _VERA.items()}


@functools.cache
def _load(font: Font) -> Any:  # reportlab's font, or None
    """The font registered with reportlab (its metrics and cmap), or None when reportlab cannot use it."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    try:
        if font.name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(font.name, font.path, subfontIndex=font.index))
        return pdfmetrics.getFont(font.name)
    except Exception:  # not TrueType outlines (CFF), unreadable, ...: fall back to the next font
        return None


def _fc_list(pattern: str) -> list[Font]:
    """TrueType fonts fontconfig knows for a pattern (':lang=zh', ':charset=4e2d'); [] without fontconfig."""
    exe = shutil.which("fc-list")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}|%{index}|%{fontformat}\n", pattern], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    fonts = []
    for line in out.splitlines():
        path, _, rest = line.partition("|")
        index, _, fmt = rest.partition("|")
        if fmt.strip() == "TrueType" and path.lower().endswith((".ttf", ".ttc")):
            fonts.append(Font(path, int(index) if index.strip().isdigit() else 0))
    return sorted(set(fonts), key=lambda f: (f.path, f.index))


def _find(rel: str) -> str | None:
    for d in _FONT_DIRS:
        p = Path(d) / rel
        if p.is_file():
            return str(p)
    return None


@functools.cache
def cjk_fonts() -> tuple[Font, ...]:
    """Installed CJK fonts reportlab can embed, known Debian paths first, then fontconfig's."""
    found = [Font(p) for p in (_find(rel) for rel in _CJK_KNOWN) if p]
    found += [f for f in _fc_list(":lang=zh") if f not in found]
    return tuple(f for f in found if _load(f) is not None and 0x4E2D in _load(f).face.charToGlyph)


@functools.cache
def _chain(style: str) -> tuple[Font, ...]:
    chain = [Font(str(_fonts()[style]))]
    dejavu = _find(f"dejavu/{_DEJAVU[style]}")
    if dejavu:
        chain.append(Font(dejavu))
    return tuple(chain)


@functools.lru_cache(maxsize=4096)
def _font_for(ch: str, style: str) -> Font:
    cp = ord(ch)
    for font in _chain(style):
        f = _load(font)
        if f is not None and cp in f.face.charToGlyph:
            return font
    if unicodedata.east_asian_width(ch) in ("W", "F") or 0x3000 <= cp <= 0x9FFF or 0xAC00 <= cp <= 0xD7AF:
        for font in cjk_fonts():
            if cp in _load(font).face.charToGlyph:
                return font
    for font in _fc_list(f":charset={cp:x}"):
        f = _load(font)
        if f is not None and cp in f.face.charToGlyph:
            return font
    return _chain(style)[0]  # nothing has it: the notdef box, at least in the right place


def _runs(text: str, style: str) -> list[tuple[Font, str]]:
    runs: list[tuple[Font, str]] = []
    for ch in text:
        # spaces and combining marks stay with the run before them when its font has them
        if runs and (ch.isspace() or unicodedata.combining(ch)) and ord(ch) in _load(runs[-1][0]).face.charToGlyph:
            font = runs[-1][0]
        else:
            font = _font_for(ch, style)
        if runs and runs[-1][0] == font:
            runs[-1] = (font, runs[-1][1] + ch)
        else:
            runs.append((font, ch))
    return runs


def _width(text: str, style: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return sum(stringWidth(t, f.name, size) for f, t in _runs(text, style))


def _breakable(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _wrap(text: str, style: str, size: float, width: float) -> list[str]:
    """Greedy line breaking: at spaces, between CJK characters, and inside a word too long for a line."""
    atoms: list[tuple[str, bool]] = []  # (text, space before)
    for word in text.split():
        piece, first = "", True
        for ch in word:
            if _breakable(ch):
                if piece:
                    atoms.append((piece, first))
                    first = False
                atoms.append((ch, first))
                piece, first = "", False
            else:
                piece += ch
        if piece:
            atoms.append((piece, first))
    lines, cur = [], ""
    for atom, space in atoms:
        trial = (cur + (" " if space and cur else "") + atom) if cur else atom
        if not cur or _width(trial, style, size) <= width:
            cur = trial
        else:
            lines.append(cur)
            cur = atom
        while _width(cur, style, size) > width and len(cur) > 1:  # one word wider than the line: cut it
            cut = len(cur) - 1
            while cut > 1 and _width(cur[:cut], style, size) > width:
                cut -= 1
            lines.append(cur[:cut])
            cur = cur[cut:]
    return lines + ([cur] if cur else [])


@dataclass
class TextBox:
    """One laid-out line, in points from the page's top-left corner; runs are (font, text, x, width)."""

    key: str
    text: str
    size: float
    color: str
    baseline: float
    x0: float
    top: float
    x1: float
    bottom: float
    runs: list = field(default_factory=list)

    def intersects(self, other: TextBox) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.top < other.bottom and other.top < self.bottom


PAGE_W, PAGE_H = 841.8897637795277, 595.2755905511812  # landscape A4 in points, as reportlab's landscape(A4)
FRAME = 36.0  # the inner frame's distance from the page edge; all text stays inside it
TEXT_W = PAGE_W - 160


def _line_box(
    key: str, text: str, style: str, size: float, color: str, top: float, align: str, x: float | None = None
) -> TextBox:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    runs = _runs(text, style)
    faces = [_load(f).face for f, _ in runs] or [_load(_chain(style)[0]).face]
    ascent = max(f.ascent for f in faces) * size / 1000
    descent = max(-f.descent for f in faces) * size / 1000
    widths = [stringWidth(t, f.name, size) for f, t in runs]
    total = sum(widths)
    x0 = {"center": (PAGE_W - total) / 2, "left": x, "right": (x or 0) - total}[align]
    placed, cx = [], x0
    left, right = x0, x0 + total
    for (f, t), w in zip(runs, widths):
        placed.append((f, t, cx, w))
        # the box holds the ink too: a CJK glyph may rise above its font's ascent, an italic overhang
        pil, clusters = _pil_font(f, size * PNG_SCALE), _clusters(t, f, size)
        for offset, cluster in clusters:
            l_, t_, r_, b_ = (v / PNG_SCALE for v in pil.getbbox(cluster, anchor="ls"))
            ascent, descent = max(ascent, -t_), max(descent, b_)
            left, right = min(left, cx + offset + l_), max(right, cx + offset + r_)
        cx += w
    baseline = top + ascent
    return TextBox(key, text, size, color, baseline, left, top, right, baseline + descent, placed)


def _content(p: dict, first: str, last: str, when: date, cert_id: str = "") -> dict:
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
        "id": cert_id,
        "verify": f"Verification id {cert_id}: check it at /certificates/{cert_id} (deeprl serve)" if cert_id else "",
    }


def layout(c: dict) -> list[TextBox]:
    """Every line of the certificate, placed so that no two boxes intersect and all stay inside the frame:
    the name shrinks to fit two lines (down to 18 pt), then the whole block shrinks until it clears the footer."""
    dark = "#222222"
    footer = [
        _line_box("date", c["date"], "regular", 12, dark, PAGE_H - 84, "left", 70),
        _line_box("brand", "deeprl", "regular", 12, dark, PAGE_H - 84, "right", PAGE_W - 70),
    ]
    if c.get("verify"):
        footer.append(_line_box("verify", c["verify"], "regular", 9, "#444444", PAGE_H - 60, "center"))
    limit = min(b.top for b in footer) - 8
    name_size = 30.0
    while name_size > 18 and len(_wrap(c["name"], "bold", name_size, TEXT_W)) > 2:
        name_size -= 1
    accent = "#1f4e79" if c["level"] != "excellence" else "#8b6508"
    items = [
        ("title", c["title"], "bold", 34, accent, 10),
        ("course", c["course"], "regular", 16, dark, 26),
        ("intro", c["intro"], "italic", 14, dark, 6),
        ("name", c["name"], "bold", name_size, dark, 4),
        ("user", c["user"], "regular", 12, "#555555", 16),
        ("body", c["body"], "regular", 14, dark, 10),
        ("units", c["units"], "regular", 10, "#444444", 0),
    ]
    scale = 1.0
    while True:
        boxes, y = [], 86.0
        for key, text, style, size, color, gap in items:
            s = size * scale
            for chunk in _wrap(text, style, s, TEXT_W):
                box = _line_box(key, chunk, style, s, color, y, "center")
                boxes.append(box)
                y = box.bottom + 0.12 * s
            y += gap * scale
        if boxes[-1].bottom <= limit or scale < 0.4:
            shift = max(0.0, (limit - boxes[-1].bottom) / 3)  # some of the free space above the block
            for b in boxes:
                b.top, b.baseline, b.bottom = b.top + shift, b.baseline + shift, b.bottom + shift
            return boxes + footer
        scale *= 0.95


def _pdf(c: dict) -> bytes:
    from reportlab.lib.colors import HexColor
    from reportlab.pdfgen import canvas

    w, h = PAGE_W, PAGE_H
    buf = io.BytesIO()
    cv = canvas.Canvas(buf, pagesize=(w, h), invariant=1)  # invariant: same input -> same bytes
    cv.setTitle(c["title"])
    cv.setAuthor("deeprl")
    if c.get("id"):
        cv.setSubject(f"Verification id {c['id']}: /certificates/{c['id']}")
        cv.setKeywords(f"deeprl certificate {c['id']}")
    accent = HexColor("#b8860b" if c["level"] == "excellence" else "#1f4e79")
    cv.setStrokeColor(accent)
    cv.setLineWidth(6)
    cv.rect(24, 24, w - 48, h - 48)
    cv.setLineWidth(1.5)
    cv.rect(FRAME, FRAME, w - 2 * FRAME, h - 2 * FRAME)
    for box in layout(c):
        cv.setFillColor(HexColor(box.color))
        for font, text, x, _ in box.runs:
            cv.setFont(font.name, box.size)
            cv.drawString(x, h - box.baseline, text)
    cv.showPage()
    cv.save()
    return buf.getvalue()


PNG_SCALE = 2.0  # 842x595 pt page at 144 dpi: 1683x1190 px


@functools.lru_cache(maxsize=256)
def _pil_font(font: Font, px: float) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(font.path, px, index=font.index, layout_engine=ImageFont.Layout.BASIC)


def _png(c: dict) -> bytes:
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    scale = PNG_SCALE
    w, h = int(PAGE_W * scale), int(PAGE_H * scale)
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    accent = "#b8860b" if c["level"] == "excellence" else "#1f4e79"
    d.rectangle([24 * scale, 24 * scale, w - 24 * scale, h - 24 * scale], outline=accent, width=int(6 * scale))
    d.rectangle(
        [FRAME * scale, FRAME * scale, w - FRAME * scale, h - FRAME * scale], outline=accent, width=int(1.5 * scale)
    )
    for box in layout(c):
        for font, text, x, _ in box.runs:
            pil = _pil_font(font, box.size * scale)
            # cluster by cluster at the PDF's (unhinted) positions: Pillow's hinted advances would drift
            for offset, cluster in _clusters(text, font, box.size):
                d.text(((x + offset) * scale, box.baseline * scale), cluster, font=pil, fill=box.color, anchor="ls")
    info = PngInfo()
    info.add_text("Title", c["title"])
    if c.get("id"):
        info.add_text("Verification-Id", c["id"])
        info.add_text("Verification-Path", f"/certificates/{c['id']}")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, pnginfo=info)
    return buf.getvalue()


def _clusters(text: str, font: Font, size: float) -> list[tuple[float, str]]:
    """(x offset in points, base character with its combining marks), from reportlab's metrics."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    out: list[tuple[float, str]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not unicodedata.combining(text[i]):
            if not text[start:i].isspace():
                out.append((stringWidth(text[:start], font.name, size), text[start:i]))
            start = i
    return out


_RENDER_LOCK = threading.Lock()  # reportlab's fonts keep per-document subset state: one render at a time


def _render(c: dict, fmt: str) -> bytes:
    if fmt in ("pdf", "png"):
        with _RENDER_LOCK:
            return _pdf(c) if fmt == "pdf" else _png(c)
    raise UserError(f"Unknown certificate format '{fmt}'; use pdf or png.")


def certificate_bytes(
    p: dict, first_name: str, last_name: str, fmt: str, when: date | None = None, *, url: str | None = None
) -> bytes:
    """The certificate as PDF or PNG bytes, recorded in the database with its verification id (printed on it);
    UserError (one sentence) below 80 %."""
    if fmt not in ("pdf", "png"):
        raise UserError(f"Unknown certificate format '{fmt}'; use pdf or png.")
    first, last = check_name(first_name, "first name"), check_name(last_name, "last name")
    when = when or datetime.now(UTC).date()
    cid = issue_certificate(p, first, last, when, url=url)
    return _render(_content(p, first, last, when, cid), fmt)


def certificate_filename(user: str, fmt: str) -> str:
    return f"deep-rl-course-certificate-{user}.{fmt}"


def write_certificate(
    p: dict,
    first_name: str,
    last_name: str,
    out_dir: str | Path = ".",
    when: date | None = None,
    *,
    url: str | None = None,
) -> list[Path]:
    """Record the certificate and write its PDF and PNG into out_dir; returns their paths (see issue_certificate
    for the verification id, the same for the same call)."""
    from deeprl.modelio import atomic_write_bytes

    first, last = check_name(first_name, "first name"), check_name(last_name, "last name")
    when = when or datetime.now(UTC).date()
    cid = issue_certificate(p, first, last, when, url=url)
    c = _content(p, first, last, when, cid)
    pdf, png = _render(c, "pdf"), _render(c, "png")
    out = Path(out_dir).expanduser()
    paths = [out / certificate_filename(p["user"], "pdf"), out / certificate_filename(p["user"], "png")]
    atomic_write_bytes(paths[0], pdf)
    atomic_write_bytes(paths[1], png)
    return paths
