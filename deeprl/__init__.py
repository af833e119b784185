"""deeprl: the Hugging Face Deep RL Course as one offline Python package and command.

`import deeprl` stays light (no gymnasium, no torch): it only arranges that the course's environment ids
(`Pixelcopter-PLE-v0`, `SoccerTwos`, ...) join Gymnasium's registry as soon as gymnasium is imported, or now if it
already is, so that course code runs unchanged: `import deeprl, gymnasium as gym; gym.make("Pixelcopter-PLE-v0")`.
`gym.make("deeprl:Pixelcopter-PLE-v0")` works without the import. (Gymnasium 1.x has no env plugin entry points:
its 0.x `gymnasium.envs` entry-point group was removed in 1.0, so a registration must run in-process.)
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (7 ms); type checkers read it the same way
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__version__ = "0.1.0"


def _register_gym_ids() -> None:
    try:
        from deeprl.envs.registry import register_gymnasium

        register_gymnasium()
    except Exception as exc:  # gymnasium's own import must never fail because of ours
        import warnings

        warnings.warn(f"deeprl could not register its environment ids with gymnasium: {exc!r}", stacklevel=2)


class _AfterGymnasium:
    """A meta path finder (by its find_spec; importlib.abc is not imported: 18 ms) that finds nothing itself: when
    `gymnasium` is first imported, it has the real loader register our ids right after gymnasium's module has run
    (a post-import hook; it takes itself off sys.meta_path at once)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "gymnasium":
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
            _register_gym_ids()

        setattr(loader, "exec_module", exec_module)  # noqa: B010  # this loader instance only (one import)
        return spec


if "gymnasium" in sys.modules:
    _register_gym_ids()
elif not any(isinstance(f, _AfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterGymnasium())
