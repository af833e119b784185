"""`deeprl record-demo --env ENV -o DIR`: a person plays with the keyboard in a window; each finished episode is
saved as a trajectory (deeprl.datasets) for behaviour cloning and GAIL.

The loop is ours rather than Gymnasium's `gymnasium.utils.play.play`, which reseeds every episode with the same seed
(every demonstration would start alike), has no episode count and maps only exact key combinations (Up with Left
pressed would be no action). Its parts are pure so a test drives them without a window: `press` folds key events
into the set of held keys, `action_for` turns held keys into the env's action, and `play` takes any `Window`
(events in, frames out).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from deeprl.commands import seed

if TYPE_CHECKING:
    import numpy as np

    from deeprl.datasets import Recorder, Trajectory


@dataclass(frozen=True)
class KeyMap:
    """Keys -> actions for one env: the first binding whose key is held wins (so Up+Left fires the main engine);
    with nothing held the env takes `noop`, or, where it has none (CartPole pushes left or right every step),
    time stands still until a key is pressed."""

    bindings: tuple[tuple[str, Any], ...]
    noop: Any = None
    fps: int = 30
    help: str = ""


# pygame key names (pygame.key.name); WASD work as the arrows
KEYMAPS: dict[str, KeyMap] = {
    "CartPole-v1": KeyMap(
        (("left", 0), ("right", 1)), None, 15, "Left/Right push the cart; time stands still while no key is held."
    ),
    "LunarLander-v2": KeyMap(
        (("up", 2), ("left", 1), ("right", 3)),
        0,
        30,
        "Up fires the main engine, Left/Right the side engines (push the lander left/right).",
    ),
    "Pixelcopter-PLE-v0": KeyMap((("up", 0), ("space", 0)), 1, 30, "Up or Space climbs; let go to fall."),
}
ALIASES = {"w": "up", "a": "left", "d": "right", "s": "down"}
QUIT_KEYS = {"escape", "q"}

Event = tuple[str, str]  # ("down" | "up", pygame key name), or ("quit", "")


def press(held: frozenset[str], event: Event) -> frozenset[str]:
    """The keys held after `event`."""
    kind, key = event
    key = ALIASES.get(key, key)
    if kind == "down":
        return held | {key}
    if kind == "up":
        return held - {key}
    return held


def action_for(keymap: KeyMap, held: Iterable[str]) -> Any:
    """The env's action for the held keys: the first binding held, else the noop (None: wait for a key)."""
    held = set(held)
    for key, action in keymap.bindings:
        if key in held:
            return action
    return keymap.noop


def wants_quit(event: Event) -> bool:
    return event[0] == "quit" or (event[0] == "down" and event[1] in QUIT_KEYS)


class Window(Protocol):
    def events(self) -> list[Event]: ...

    def show(self, frame: np.ndarray, caption: str) -> None: ...

    def tick(self, fps: int) -> None: ...


def play(
    env: Recorder,
    keymap: KeyMap,
    window: Window,
    n_episodes: int,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    fps: int | None = None,
    on_episode: Callable[[int, Trajectory], None] | None = None,
) -> list[Trajectory]:
    """Up to `n_episodes` played from `window`'s key events (seeds seed, seed+1, ...), each starting at a key press;
    a quit key or closing the window stops early and keeps the episodes already finished. The env is a
    deeprl.datasets.Recorder."""
    episodes: list[Trajectory] = []
    held: frozenset[str] = frozenset()
    for i in range(n_episodes):
        env.reset(seed=seed + i)
        steps, done, total = 0, False, 0.0
        window.show(_frame(env), f"episode {i + 1}/{n_episodes}: press a key to start. {keymap.help}")
        started = False  # each episode waits for a key press, so that the person is ready when it moves
        while not done:
            for event in window.events():
                if wants_quit(event):
                    return episodes
                held = press(held, event)
                started = started or event[0] == "down"
            action = action_for(keymap, held) if started else None
            if action is not None:
                _, reward, terminated, truncated, _ = env.step(action)
                steps, total = steps + 1, total + float(reward)
                done = terminated or truncated or (max_steps is not None and steps >= max_steps)
                window.show(_frame(env), f"episode {i + 1}/{n_episodes}  return {total:.1f}")
            window.tick(fps or keymap.fps)
        episode = env.take()
        if episode is not None:
            episodes.append(episode)
            if on_episode is not None:
                on_episode(i, episode)
    return episodes


def _frame(env: Recorder) -> np.ndarray:
    return cast("np.ndarray", env.render())  # an rgb_array env renders one frame


def has_display() -> bool:
    """Whether a window can open: Windows and macOS always have one; elsewhere X11 or Wayland must be named, unless
    SDL_VIDEODRIVER picks a driver itself."""
    if sys.platform in ("win32", "darwin"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"))


class PygameWindow:
    """The window the person plays in (pygame, which Gymnasium's own rendering uses)."""

    def __init__(self, scale: float = 1.0):
        import pygame

        self.pygame, self.scale = pygame, scale
        pygame.display.init()  # (not pygame.init(): no sound, so no audio device is needed)
        self.screen: Any = None
        self.clock = pygame.time.Clock()

    def events(self) -> list[Event]:
        pg = self.pygame
        out: list[Event] = []
        for e in pg.event.get():
            if e.type == pg.QUIT:
                out.append(("quit", ""))
            elif e.type in (pg.KEYDOWN, pg.KEYUP):
                out.append(("down" if e.type == pg.KEYDOWN else "up", pg.key.name(e.key)))
        return out

    def show(self, frame: np.ndarray, caption: str) -> None:
        pg = self.pygame
        surface = pg.surfarray.make_surface(frame.swapaxes(0, 1))
        if self.scale != 1:
            surface = pg.transform.scale_by(surface, self.scale)
        if self.screen is None:
            self.screen = pg.display.set_mode(surface.get_size())
        pg.display.set_caption(caption)
        self.screen.blit(surface, (0, 0))
        pg.display.flip()

    def tick(self, fps: int) -> None:
        self.clock.tick(fps)

    def close(self) -> None:
        self.pygame.display.quit()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record-demo", help="play an env with the keyboard and save the episodes as demonstrations")
    p.add_argument("--env", required=True, help=f"the env to play: {', '.join(KEYMAPS)}")
    p.add_argument("-o", "--out", required=True, help="dataset folder (created; --append adds to one)")
    p.add_argument("--episodes", type=int, default=5, help="episodes to play (default 5; Esc or Q stops early)")
    p.add_argument("--append", action="store_true", help="add the episodes to the dataset in --out")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first episode (the next ones count up)")
    p.add_argument("--fps", type=int, default=None, help="steps per second (default: the env's, slowed for people)")
    p.add_argument("--scale", type=float, default=1.0, help="window zoom (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl import datasets
    from deeprl.envs import make_env, resolve_env
    from deeprl.errors import UserError
    from deeprl.paths import check_can_create

    spec, kwargs = resolve_env(args.env)
    keymap = KEYMAPS.get(spec.course_id)
    if keymap is None:
        raise UserError(f"record-demo has no keyboard controls for {spec.course_id}; it knows {', '.join(KEYMAPS)}.")
    if args.episodes < 1 or (args.fps is not None and args.fps < 1) or not 0 < args.scale <= 8:
        raise UserError("--episodes and --fps must be at least 1, and --scale between 0 and 8.")
    check_can_create(args.out, "The dataset folder", "pick another one with -o")
    if not has_display():
        raise UserError(
            "record-demo needs a display for its window and none is available (DISPLAY is not set); run it in a "
            "desktop session, or over ssh -X."
        )
    env = datasets.Recorder(make_env(spec.course_id, kwargs, render_mode="rgb_array"))
    spaces = datasets.space_info(env.observation_space, env.action_space)
    print(f"{spec.course_id}: {keymap.help} Esc or Q stops (finished episodes are kept).")

    def saved(i: int, episode: Trajectory) -> None:
        print(f"episode {i + 1}: return {episode.episode_return:.2f}, {len(episode)} steps")

    window = PygameWindow(args.scale)
    try:
        episodes = play(
            env,
            keymap,
            window,
            args.episodes,
            seed=args.seed,
            max_steps=spec.eval_max_steps,
            fps=args.fps,
            on_episode=saved,
        )
    finally:
        window.close()
        env.close()
    if not episodes:
        print("No episode was finished; nothing saved.")
        return 0
    datasets.write(
        args.out,
        episodes,
        env_id=spec.course_id,
        env_kwargs=kwargs,
        spaces=spaces,
        source="a person at the keyboard (deeprl record-demo)",
        append=args.append,
    )
    summary = datasets.read(args.out).summary()
    print(f"Saved {len(episodes)} episodes to {args.out} ({summary['episodes']} in the dataset).")
    return 0
