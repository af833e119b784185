"""The example notebooks (examples/unit*.ipynb, issue 20 item 3) run from top to bottom on a tiny budget.

Each runs in its own Jupyter kernel (nbclient; the kernel is this interpreter, through ipykernel) with
DEEPRL_EXAMPLE_STEPS tiny, and its own DEEPRL_HOME and working folder under the test's temporary folder. A notebook
passes when every cell runs and the figures it printed are those of the repositories it pushed (results.json) and
of the leaderboard it showed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("unit*.ipynb"))
TINY_STEPS = "256"
FIGURE = re.compile(r"^(?P<tag>\S+): mean_reward=(?P<mean>-?[\d.]+) \+/- (?P<std>[\d.]+)  result=", re.M)


def printed(nb: nbformat.NotebookNode) -> str:
    """Everything the cells printed (streams and displayed text), in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                parts.append(out.data.get("text/plain", "") + "\n")
    return "".join(parts)


def test_the_examples_are_there_and_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "unit1_lunarlander.ipynb",
        "unit2_qlearning.ipynb",
        "unit3_dqn.ipynb",
        "unit4_reinforce.ipynb",
        "unit6_a2c.ipynb",
        "unit8_ppo.ipynb",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} stores outputs"
        assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4, f"{path.name}: explain each step to a learner"
        sources = "\n".join(c.source for c in code)
        for call in ("deeprl.train(", "deeprl.evaluate(", "deeprl.push(", "deeprl leaderboard"):
            assert call in sources, f"{path.name} lacks {call}"


def execute(path: Path, home: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel whose environment says: a tiny budget, DEEPRL_HOME = `home`."""
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "DEEPRL_EXAMPLE_STEPS": TINY_STEPS, "DEEPRL_HOME": str(home)}
    # `!deeprl ...` finds the command beside this interpreter, as in a notebook started from its environment
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": workdir}})
    client.execute(env=env)  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    return nb


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory) -> dict[Path, Future]:
    """The selected notebooks, started together (each in its own kernel, a few at a time): most of a notebook's
    time is its kernel and the leaderboard's child processes starting, which overlap well."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if item.originalname == "test_notebook_runs_and_prints_the_pushed_figures"
    ]
    pool = ThreadPoolExecutor(max_workers=max(2, min(3, os.cpu_count() or 1)))
    futures = {}
    for path in selected:
        home, workdir = tmp_path_factory.mktemp(f"{path.stem}_home"), tmp_path_factory.mktemp(path.stem)
        futures[path] = pool.submit(lambda p=path, h=home, w=workdir: (execute(p, h, w), h, w))
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.timeout(900)  # a guard against a hung kernel: the notebooks run together, so one may wait for others
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_prints_the_pushed_figures(path, executed):
    nb, home, workdir = executed[path].result()
    text = printed(nb)
    repos = sorted(p.parent for p in (home / "hub").glob("*/*/results.json"))
    assert repos, f"{path.name} pushed nothing:\n{text}"
    shown = {(m["tag"], m["mean"], m["std"]) for m in FIGURE.finditer(text)}
    for repo in repos:
        results = json.loads((repo / "results.json").read_text())
        figure = (results["env_tag"], f"{results['mean_reward']:.2f}", f"{results['std_reward']:.2f}")
        assert figure in shown, f"{path.name}: {figure} of {repo.name} was not printed:\n{text}"
        repo_id = f"{repo.parent.name}/{repo.name}"
        mean_std = re.escape(f"{figure[1]} +/- {figure[2]}")
        row = re.search(rf"^\s+\d+\s+{re.escape(repo_id)}\s.*\s{mean_std}", text, re.M)
        assert row, f"{path.name}: the leaderboard does not rank {repo_id} at {figure[1]}:\n{text}"
    assert (workdir / "logs").is_dir()  # the runs went to the notebook's folder, not the test's
