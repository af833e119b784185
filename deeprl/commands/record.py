import argparse

from deeprl.commands import seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record a replay video (H.264 MP4, no display needed)")
    p.add_argument("model", help="run folder, model folder, course .pkl file, or NAMESPACE/NAME repo id")
    p.add_argument("--out", default="replay.mp4", help="output .mp4 file (default: replay.mp4)")
    p.add_argument("--n-episodes", type=int, default=1)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--fps", type=float, default=None, help="default: 1 for Taxi/FrozenLake, else the env's own")
    p.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    p.add_argument("--hub", choices=["local", "hf"], default=None, help="hub for a repo id: local (default) or hf")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.agent import load_agent
    from deeprl.errors import UserError
    from deeprl.video import record

    if args.fps is not None and args.fps <= 0:
        raise UserError("--fps must be positive.")
    from pathlib import Path

    from deeprl.paths import check_can_create

    out = Path(args.out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name, for example {out / 'replay.mp4'}.")
    check_can_create(out, "The video file (--out)", "pick another path with --out")
    agent = load_agent(args.model, revision=args.revision, hub=args.hub)
    written = record(agent, args.out, n_episodes=args.n_episodes, seed=args.seed, fps=args.fps)
    print(f"Wrote {written['frames']} frames at {written['fps']:g} fps to {written['path']}.")
    return 0
