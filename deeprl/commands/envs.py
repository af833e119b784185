import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("envs", help="list the course environment ids deeprl knows")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deeprl.commands import print_json
    from deeprl.envs import list_specs

    rows = [
        {
            "env_id": s.course_id,
            "unit": s.unit,
            "runs_as": s.gym_id or s.course_id,
            "tag": s.card_tag(),
            "eval_episodes": s.n_eval_episodes,
            "description": s.description,
        }
        for s in list_specs()
    ]
    if args.json:
        print_json({"envs": rows})
        return 0
    print(f"{'env id':<34} {'unit':<5} {'runs as':<30} {'eval':>5}  description")
    for r in rows:
        print(f"{r['env_id']:<34} {r['unit']:<5} {r['runs_as']:<30} {r['eval_episodes']:>5}  {r['description']}")
    return 0
