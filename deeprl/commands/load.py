import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="download a model repository from a hub into a folder")
    p.add_argument("repo_id", metavar="NAMESPACE/NAME")
    p.add_argument(
        "-f",
        "--folder",
        default=None,
        help="a log folder: the model lands in FOLDER/<algo>/<env>_N, as RL-Zoo's load_from_hub does, "
        "so 'deeprl enjoy --algo A --env E -f FOLDER' finds it (default: models/NAMESPACE/NAME)",
    )
    p.add_argument("--revision", default=None, help="commit, branch or tag (default: the latest)")
    p.add_argument("--hub", choices=["local", "hf"], default=None, help="local (default) or hf")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from deeprl.agent import load_agent
    from deeprl.commands import print_json
    from deeprl.hub import check_hub, get_hub, validate_repo_id
    from deeprl.paths import check_can_create, writable_folder

    validate_repo_id(args.repo_id)
    hub = get_hub(check_hub(args.hub))
    if args.folder:
        import tempfile

        writable_folder(args.folder, "The folder given with -f", "pick another one with -f")
        dest = Path(tempfile.mkdtemp(prefix=".incoming-", dir=args.folder))
    else:
        dest = check_can_create(
            Path("models") / args.repo_id,
            "The model folder",
            "run the command from a folder you can write to, or pick one with -f",
        )
    try:
        folder = hub.download(args.repo_id, revision=args.revision, dest=dest)
        agent = load_agent(folder)  # the files must make a working agent: bad weights fail here, one sentence
    except BaseException:
        if args.folder:
            import shutil

            shutil.rmtree(dest, ignore_errors=True)
        raise
    if args.folder:
        import os

        from deeprl.train import new_run_dir

        run_dir = new_run_dir(Path(args.folder), agent.config["algo"], agent.config.get("env_tag") or agent.env_id)
        os.rmdir(run_dir)  # new_run_dir reserved the number; the downloaded folder takes its place
        os.rename(folder, run_dir)
        folder = run_dir
    revision = args.revision
    if revision is None:
        revs = hub.revisions(args.repo_id)
        revision = revs[0][0] if revs else None
    out = {
        "repo_id": args.repo_id,
        "revision": revision,
        "folder": str(folder),
        "algo": agent.config.get("algo"),
        "env_id": agent.env_id,
    }
    if args.json:
        print_json(out)
    else:
        print(f"Loaded {args.repo_id} ({out['algo']} on {agent.env_id}, revision {revision}) into {folder}.")
        print(f"Evaluate it with: deeprl evaluate {folder}")
    return 0
