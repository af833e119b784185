"""deeprl: the Hugging Face Deep RL Course as one offline Python package and command.

`import deeprl` stays light (no gymnasium, no torch): it only arranges that the course's environment ids
(`Pixelcopter-PLE-v0`, `SoccerTwos`, ...) join Gymnasium's registry as soon as gymnasium is imported, or now if it
already is, so that course code runs unchanged: `import deeprl, gymnasium as gym; gym.make("Pixelcopter-PLE-v0")`.
`gym.make("deeprl:Pixelcopter-PLE-v0")` works without the import. (Gymnasium 1.x has no env plugin entry points:
its 0.x `gymnasium.envs` entry-point group was removed in 1.0, so a registration must run in-process.)

The notebook API (deeprl/api.py) is here too, loaded on first use so that `import deeprl` stays light:
`deeprl.train(algo, env_id, n_timesteps=...)`, `deeprl.evaluate(run_or_model_or_repo)`, `deeprl.push(run,
repo_id=...)`, `deeprl.load(repo_id_or_path).predict(obs)`. `deeprl.train` is also the module deeprl/train.py:
once the API is loaded that module is callable, so both `deeprl.train(...)` and `import deeprl.train` work.
"""

from __future__ import annotations

import sys

from deeprl.version import __version__ as __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms); type checkers read it the same way
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from deeprl.api import evaluate as evaluate, load as load, push as push

_API = ("train", "evaluate", "push", "load")  # deeprl/api.py's functions, loaded on first use (PEP 562)


def __getattr__(name: str) -> object:
    """`deeprl.train`, `deeprl.evaluate`, `deeprl.push`, `deeprl.load`: deeprl.api and the code it runs are imported
    only when a notebook first asks for one of them."""
    if name not in _API:
        raise AttributeError(f"module 'deeprl' has no attribute {name!r}")
    from deeprl import api

    if name == "train":  # the module deeprl/train.py, which deeprl.api has made callable as its train()
        return sys.modules["deeprl.train"]
    return getattr(api, name)


def _register_gym_ids() -> None:
    try:
        from deeprl.envs.registry import register_gymnasium

        register_gymnasium()
    except Exception as exc:  # gymnasium's own import must never fail because of ours
        import warnings

        warnings.warn(f"deeprl could not register its environment ids with gymnasium: {exc!r}", stacklevel=2)


class _AfterImport:
    """A meta path finder (by its find_spec; importlib.abc is not imported: 18 ms) that finds nothing itself: when
    module `name` is first imported, it has the real loader call `then()` right after that module has run (a
    post-import hook; it takes itself off sys.meta_path at once)."""

    def __init__(self, name: str, then: Callable[[], None]):
        self.name, self.then = name, then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        import importlib.util

        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the finders after this one
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            self.then()

        setattr(loader, "exec_module", exec_module)  # noqa: B010  # this loader instance only (one import)
        return spec


def _hook(name: str, then: Callable[[], None]) -> None:
    """`then()` now if `name` is imported already, else right after its first import (once per process)."""
    if name in sys.modules:
        then()
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, then))


def _make_train_callable() -> None:
    """deeprl.api's import makes the module deeprl.train callable (deeprl.api._CallableModule). So `deeprl.train(...)`
    trains however the module was first imported (by an algorithm, by `deeprl.agent.load_agent`, ...), and
    `import deeprl.train` still gives the module that the code base imports."""
    from deeprl import api  # noqa: F401


_hook("gymnasium", _register_gym_ids)
_hook("deeprl.train", _make_train_callable)
