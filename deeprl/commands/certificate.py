import argparse
from datetime import UTC


def add_parser(sub: argparse._SubParsersAction) -> None:
    from deeprl.commands.index import add_index_options

    p = sub.add_parser("certificate", help="write the course certificate (PDF and PNG) once 80 %% is passed")
    p.add_argument("user", help="hub username")
    p.add_argument("--first-name", required=True)
    p.add_argument("--last-name", required=True)
    p.add_argument("--out", default=".", help="folder for the PDF and PNG (default: here)")
    p.add_argument("--no-index", action="store_true", help="use the database as it is, without indexing first")
    add_index_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from deeprl.certification import check_name, check_user, issue_certificate, progress, write_certificate
    from deeprl.commands.index import index_before_showing
    from deeprl.hub import check_hub

    check_user(args.user)
    check_name(args.first_name, "first name")
    check_name(args.last_name, "last name")
    hub = check_hub(args.hub)
    if not args.no_index:
        index_before_showing(args)
    p = progress(args.user, hub=hub)
    when = datetime.now(UTC).date()  # one date for the files and the id, even across midnight
    paths = write_certificate(p, args.first_name, args.last_name, args.out, when)  # UserError (exit 2) below 80 %
    cert_id = issue_certificate(p, args.first_name, args.last_name, when)  # the id just recorded (idempotent)
    print(
        f"Certificate of {p['level']} for {args.first_name} {args.last_name} ({p['passed']} of {p['total']} "
        f"assignments): {paths[0]} and {paths[1]}"
    )
    print(f"Verification id: {cert_id}; anyone can check it with 'deeprl serve', then /certificates/{cert_id}")
    return 0
