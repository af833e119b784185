import argparse

from deeprl.commands import seed
from deeprl.commands.enjoy import add_run_id


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model as an ONNX file that acts as deeprl's agent does")
    p.add_argument(
        "model", nargs="?", help="run folder, model folder, course .pkl, SB3 .zip, or NAMESPACE/NAME repo id"
    )
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--algo", default=None, help="with --env or --run-id: a run under LOG_FOLDER")
    p.add_argument("--env", default=None, help="with --algo: the newest run of ALGO on ENV; for an SB3 .zip: its env")
    p.add_argument("-f", "--log-folder", default="logs")
    add_run_id(p)
    p.add_argument("--revision", default=None, help="hub revision (commit, branch or tag)")
    p.add_argument("--hub", choices=["local", "hf"], default=None, help="hub for a repo id: local (default) or hf")
    p.add_argument(
        "--check",
        type=int,
        default=1000,
        metavar="N",
        help="run the file in onnxruntime on N observations drawn from the env and compare its actions with "
        "deeprl's (default 1000; 0 skips)",
    )
    p.add_argument("--seed", type=seed, default=0, help="seed of the observations --check draws")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from deeprl.commands import print_json
    from deeprl.commands.enjoy import find_model
    from deeprl.errors import UserError

    out = Path(args.onnx)
    if out.is_dir():
        raise UserError(f"{out} is a folder; give the ONNX file to write with --onnx, e.g. --onnx model.onnx.")
    if args.check < 0:
        raise UserError("--check must be 0 (no check) or a number of observations.")
    from deeprl import onnx_export

    onnx_export.require_onnx()  # a missing onnx package is the answer before any model is loaded
    agent = find_model(args)  # a model, a --run-id, or --algo with --env, as evaluate finds them
    space = onnx_export.observation_space(agent)
    summary = onnx_export.export(agent, out, space)
    summary["model"] = str(getattr(agent, "source", "") or args.model or "")
    if args.check:
        try:
            import onnxruntime  # noqa: F401  # the check's runtime, an optional install
        except ImportError:
            print("deeprl: note: install onnxruntime to check the file against deeprl's agent.", file=sys.stderr)
        else:
            observations = onnx_export.sample_observations(space, args.check, args.seed)
            summary["check"] = onnx_export.check(agent, out, observations)
    check = summary.get("check")
    agrees = not check or check["equal"] == check["n"]
    if args.json:
        print_json(summary)
        return 0 if agrees else 1
    size = summary["bytes"] / 1e6
    print(f"{summary['model']} -> {out}: {summary['kind']}, {summary['algo']} on {summary['env_id']} ", end="")
    print(f"(ONNX opset {summary['opset']}, {size:.2f} MB)")
    for side in ("inputs", "outputs"):
        for port in summary[side]:
            dims = ", ".join(str(d) for d in port["shape"])
            print(f"  {side[:-1]:<6}  {port['name']:<14} {port['dtype']:<8} [{dims}]")
    if summary["metadata"].get("action_repeat", "1") != "1":
        print(f"  hold each action for {summary['metadata']['action_repeat']} env steps; h_in starts at zeros")
    if check:
        print(
            f"onnxruntime: {check['equal']} of {check['n']} actions equal deeprl's on observations drawn from "
            f"{agent.env_id}'s observation space (largest difference {check['max_abs_diff']:.2g})"
        )
    if not agrees:  # our failure, not the user's: exit 1
        print("deeprl: error: the ONNX file disagrees with deeprl's agent; please report it.", file=sys.stderr)
    return 0 if agrees else 1
