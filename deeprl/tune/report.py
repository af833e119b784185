"""What a study found: a line per trial, the report, the best settings as YAML, plots."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deeprl.errors import UserError
from deeprl.tune.storage import _quiet_optuna, _safe, default_storage, open_storage

if TYPE_CHECKING:
    import optuna
    from optuna.trial import (
        FrozenTrial,  # optuna is imported where it is used: it takes a second to import
        TrialState,
    )


def _trial_line(
    study: optuna.Study, number: int, state: TrialState, value: float | None, error: str | None, seconds: float
) -> str:
    from optuna.trial import TrialState

    t = study._storage.get_trial(study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    if state == TrialState.COMPLETE:
        line = (
            f"trial {number}: result {value:.2f} (mean {t.user_attrs.get('mean_reward', float('nan')):.2f} "
            f"+/- {t.user_attrs.get('std_reward', float('nan')):.2f}) in {seconds:.1f} s"
        )
        try:
            best = study.best_trial
            line += f"; best {best.value:.2f} (trial {best.number})"
        except ValueError:
            pass
        return line
    if state == TrialState.PRUNED:
        steps = sorted(t.intermediate_values)
        last = t.intermediate_values[steps[-1]] if steps else float("nan")
        return f"trial {number}: pruned after evaluation {len(steps)} (result {last:.2f}) in {seconds:.1f} s"
    return f"trial {number}: failed ({error})"


# --------------------------------------------------------------------------------------------------------------
# Results


def load_study(storage_url: str | None = None, study_name: str | None = None) -> optuna.Study:
    import optuna

    url = storage_url or default_storage()
    storage = open_storage(url, heartbeat_interval=None)
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    names = [s.study_name for s in summaries]
    if not names:
        raise UserError(f"There is no study in {_show_url(url)}; start one with deeprl tune --algo ALGO --env ENV.")
    if study_name is None:
        if len(names) > 1:
            raise UserError(f"{_show_url(url)} holds several studies ({', '.join(names)}); pick one with --study-name.")
        study_name = names[0]
    if study_name not in names:
        from deeprl.errors import closest

        hints = closest(study_name, names)
        hint = f" Did you mean {hints[0]}?" if hints else ""
        raise UserError(f"No study named {study_name} in {_show_url(url)}.{hint} Studies: {', '.join(names)}.")
    return optuna.load_study(study_name=study_name, storage=storage)


def _show_url(url: str) -> str:
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def completed(study: optuna.Study) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: -t.value)  # type: ignore[operator]  # a COMPLETE trial has a value


def best_hyperparams(study: optuna.Study) -> tuple[FrozenTrial, dict]:
    done = completed(study)
    if not done:
        raise UserError(f"Study {study.study_name} has no completed trial yet.")
    best = done[0]
    return best, dict(best.user_attrs.get("hyperparams") or best.params)


def best_yaml(study: optuna.Study) -> str:
    """The best trial as a hyperparameter file that `deeprl train -c FILE` takes unchanged (keyed by env)."""
    best, hp = best_hyperparams(study)
    attrs = study.user_attrs
    env_key = attrs.get("env_tag") or attrs.get("env_id")
    kwargs = attrs.get("env_kwargs") or {}
    env_arg = " --env-kwargs " + " ".join(f"{k}:{v}" for k, v in kwargs.items()) if kwargs else ""
    header = (
        f"# Best trial of Optuna study {study.study_name}: trial {best.number}, result {best.value:.2f} "
        f"(mean_reward - std_reward).\n"
        f"# Train with: deeprl train --algo {attrs.get('algo')} --env {attrs.get('env_id')}{env_arg} "
        f"-c THIS_FILE\n"
    )
    return header + yaml.safe_dump({env_key: hp}, sort_keys=True, default_flow_style=False)


def write_best(study: optuna.Study, path: str | Path) -> Path:
    from deeprl.modelio import atomic_write_bytes

    text = best_yaml(study)
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return path


def study_report(study: optuna.Study, top: int = 5) -> str:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    attrs = study.user_attrs
    env = attrs.get("env_tag") or attrs.get("env_id", "?")
    lines = [
        f"Study {study.study_name}: {attrs.get('algo', '?')} on {env}, {len(trials)} trials ("
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        + ")"
    ]
    done = completed(study)
    if not done:
        lines.append("No completed trial yet.")
        return "\n".join(lines)
    lines.append(f"Best {min(top, len(done))} by result (mean_reward - std_reward):")
    for t in done[:top]:
        hp = t.user_attrs.get("hyperparams") or t.params
        mean, std = t.user_attrs.get("mean_reward"), t.user_attrs.get("std_reward")
        figures = f"{t.value:9.2f}" + (f"  ({mean:.2f} +/- {std:.2f})" if mean is not None else "")
        lines.append(f"  trial {t.number:>4}: {figures}")
        lines.append("      " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(hp.items())))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def save_plots(study: optuna.Study, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Optimization history, parameter importances and intermediate values as PNG; returns (paths, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    _quiet_optuna()
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    saved, notes = [], []
    plots: list[tuple[str, Callable[..., Any]]] = [
        ("optimization_history.png", ovm.plot_optimization_history),
        ("param_importances.png", ovm.plot_param_importances),
        ("intermediate_values.png", ovm.plot_intermediate_values),
    ]
    for name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = plot(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
            saved.append(out / name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes.append(f"{name} not drawn: {exc}")
    return saved, notes


def study_dir(study: optuna.Study) -> Path:
    from deeprl.paths import home

    return home() / "tune" / _safe(study.study_name)
