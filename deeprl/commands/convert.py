import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="turn a Stable-Baselines3 .zip (PPO, A2C, DQN) into a deeprl model folder, unpickling nothing"
    )
    p.add_argument("model", metavar="MODEL.zip", help="an SB3 model file, as SB3's model.save and the Hub store it")
    p.add_argument("-f", "--folder", required=True, help="the model folder to write (config.json, model.safetensors)")
    p.add_argument(
        "--env",
        default=None,
        help="the course env id it plays (default: from the file's or folder's name, a model card beside it, or the "
        "one env whose spaces fit)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deeprl.commands import print_json
    from deeprl.errors import UserError
    from deeprl.modelio import CONFIG_FILE, MODEL_FILE
    from deeprl.sb3 import convert

    out = Path(args.folder)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; give a folder to write the model into with -f.")
    if (out / CONFIG_FILE).exists() or (out / MODEL_FILE).exists():
        raise UserError(f"{out} already holds a model; pick another folder with -f.")
    config = convert(args.model, out, env=args.env)
    summary = {
        "folder": str(out),
        "algo": config["algo"],
        "env_id": config["env_id"],
        "policy": config["source"]["policy"],
        "sb3_version": config["source"]["sb3_version"],
    }
    if args.json:
        print_json(summary)
    else:
        print(
            f"{args.model}: SB3 {config['algo'].upper()} {summary['policy']} on {config['env_id']} "
            f"(SB3 {summary['sb3_version'] or 'version unknown'}) -> {out}"
        )
    return 0
