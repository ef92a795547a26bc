"""`secure-ml check PATH`, `secure-ml retrofit PATH` and `secure-ml gates PATH`."""

from __future__ import annotations

import argparse
import os
import subprocess  # nosec B404 - runs the packaged gates script with an argument list
import sys
from pathlib import Path

from secure_ml_template import check
from secure_ml_template.template import Refusal, UsageError, gates_script

EXIT_CODES = """exit codes (every command):
  0  done (check: score at or above --min-score; retrofit: plan printed or applied; gates: all passed)
  1  findings or refusal (check: score below --min-score; retrofit: refused, e.g. uncommitted
     changes or a file it cannot write; gates: a gate found something or did not run)
  2  usage or bad input (unknown option, missing folder, an invalid --package or --name)"""


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line saying what is wrong and where the help is, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    top = OneLineParser(
        prog="secure-ml", formatter_class=formatter, epilog=EXIT_CODES,
        description="Audit an ML repository against the secure ML template's controls, add its security "
                    "program to it, or run its security gates.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    audit = sub.add_parser("check", help="audit a repository (reads only)", epilog=EXIT_CODES, formatter_class=formatter)
    audit.add_argument("path", help="the repository's folder")
    audit.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    audit.add_argument("--min-score", type=int, default=0, metavar="N",
                       help="exit 1 when the score (percent of controls present) is below N (default 0)")

    retro = sub.add_parser(
        "retrofit", epilog=EXIT_CODES, formatter_class=formatter,
        help="add the security program to a repository, changing none of its bytes or behaviour",
        description="Add the security gates (pre-commit hooks, a CI job of its own name), SECURITY.md and docs "
                    "stubs when absent, and a controls registry. Every invariant is checked on scratch copies "
                    "before anything is written; a change that would break one is printed as a proposal.")
    retro.add_argument("path", help="the repository's folder")
    retro.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    retro.add_argument("--force", action="store_true", help="run even if the git repository has uncommitted changes")
    retro.add_argument("--ci", choices=("github", "gitlab", "none"),
                       help="CI provider for the gates job (default: gitlab if .gitlab-ci.yml and no GitHub workflows, else github)")
    retro.add_argument("--with-pipeline", metavar="DIR",
                       help="also add the template's DVC + MLflow pipeline as a self-contained sub-project in DIR "
                            "(this runs the repository's `pytest --collect-only` on a scratch copy to prove its "
                            "test collection is unchanged)")
    retro.add_argument("--name", help="the pipeline sub-project's name (default: DIR's name)")
    retro.add_argument("--package", help="the pipeline sub-project's Python package (default: from DIR's name); "
                                         "an invalid name is refused, never rewritten")
    retro.add_argument("--tracking", choices=("local", "server"), default="local", help="the pipeline's MLflow tracking")
    retro.add_argument("--python-version", choices=("3.11", "3.12", "3.13"))
    retro.add_argument("--author-name")
    retro.add_argument("--author-email", help="the security contact written into SECURITY.md")

    gates = sub.add_parser("gates", epilog=EXIT_CODES, formatter_class=formatter,
                           help="run the security gates on a repository (needs the [gates] extra's scanners)")
    gates.add_argument("path", help="the repository's folder")
    gates.add_argument("gates", nargs="*", metavar="GATE",
                       help="bandit, secrets, audit, models, sbom, ci (default: all)")
    return top


def run_check(args) -> int:
    root = _folder(args.path)
    rows = check.audit(root)
    print(check.render(rows, args.format, root))
    if check.score(rows) < args.min_score:
        if args.format == "table":
            print(f"below --min-score {args.min_score}")
        return 1
    return 0


def _folder(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{path}: {'not a folder' if root.exists() else 'no such folder'}; "
                         "pass the path of the repository")
    return root.resolve()


def run_gates(args) -> int:
    root = _folder(args.path)
    # -I: the gates script sees neither PYTHONPATH nor the repository's folder on sys.path.
    done = subprocess.run([sys.executable, "-I", str(gates_script()), "--root", str(root), *args.gates],  # nosec B603
                          cwd=root, check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return done.returncode if done.returncode in (0, 1, 2) else 1


def run_retrofit(args) -> int:
    from secure_ml_template import retrofit

    root = retrofit.validate_root(args.path)
    options = {"ci": args.ci or retrofit.infer_ci(root), "tracking": args.tracking,
               "python_version": args.python_version}
    if args.package is not None:
        retrofit.validate_package(args.package)
    if args.name is not None:
        retrofit.validate_name(args.name)
    if args.author_email is not None:
        options["author_email"] = retrofit.validate_email(args.author_email)
    if args.author_name is not None:
        options["author_name"] = retrofit.validate_name(args.author_name)
    if args.with_pipeline is not None:
        folder = retrofit.validate_dir(root, args.with_pipeline)
        options.update(with_pipeline=folder, name=args.name or Path(folder).name,
                       package=retrofit.validate_package(args.package or retrofit.default_package(folder)))
        retrofit.validate_name(options["name"])
    elif args.package is not None or args.name is not None:
        raise UsageError("--package and --name name the pipeline sub-project: use them with --with-pipeline DIR")
    dirty = retrofit.uncommitted(root)
    if dirty and not args.force and not args.dry_run:
        raise Refusal(f"{args.path} has {len(dirty)} uncommitted change(s) (e.g. {retrofit.shown(dirty[0])}); "
                      "commit or stash them first so the retrofit is one reviewable diff, or pass --force")
    before = check.audit(root)
    plan = retrofit.build(root, options)
    print(f"Retrofit plan for {root}{' (dry run: nothing is changed)' if args.dry_run else ''}")
    print("\n".join(plan.lines()))
    if dirty and args.dry_run and not args.force:
        print(f"note: {len(dirty)} uncommitted change(s): the real run needs them committed, or --force")
    if not args.dry_run and not plan.empty:
        retrofit.apply(root, plan)
    print()
    print("check before:")
    print(check.render(before, "table", root))
    if not args.dry_run:
        print()
        print("check after:")
        print(check.render(check.audit(root), "table", root))
        if not plan.empty:
            print("\nReview the changes (git diff / git status) and the proposals above, then commit.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"check": run_check, "retrofit": run_retrofit, "gates": run_gates}
    try:
        return commands[args.command](args)
    except UsageError as exc:
        print(f"secure-ml {args.command}: {exc}", file=sys.stderr)
        return 2
    except Refusal as exc:
        print(f"secure-ml {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
