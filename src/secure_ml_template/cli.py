"""`secure-ml check PATH` and `secure-ml retrofit PATH`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from secure_ml_template import check
from secure_ml_template.template import UsageError


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line saying what is wrong and where the help is, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(
        prog="secure-ml",
        description="Audit an ML repository against the secure ML template's controls, or add them to it.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    audit = sub.add_parser("check", help="audit a repository (reads only)")
    audit.add_argument("path", help="the repository's folder")
    audit.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    audit.add_argument("--min-score", type=int, default=0, metavar="N",
                       help="exit 1 when the score (percent of controls present) is below N (default 0)")

    retro = sub.add_parser("retrofit", help="add what the template would give a repository, overwriting nothing")
    retro.add_argument("path", help="the repository's folder")
    retro.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    retro.add_argument("--force", action="store_true", help="run even if the git repository has uncommitted changes")
    retro.add_argument("--name", help="project name (default: [project].name of pyproject.toml, else the folder's name)")
    retro.add_argument("--package", help="Python package name (default: src/<package>, a top-level package, else from the name)")
    retro.add_argument("--ci", choices=("github", "gitlab", "none"), help="CI provider (default: gitlab if .gitlab-ci.yml, else github)")
    retro.add_argument("--tracking", choices=("local", "server"), default="local")
    retro.add_argument("--license", choices=("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"))
    retro.add_argument("--python-version", choices=("3.11", "3.12", "3.13"))
    retro.add_argument("--author-name")
    retro.add_argument("--author-email")
    return top


def run_check(args) -> int:
    root = Path(args.path)
    if not root.is_dir():
        raise UsageError(f"{args.path}: {'not a folder' if root.exists() else 'no such folder'}; "
                         "pass the path of the repository")
    rows = check.audit(root.resolve())
    print(check.render(rows, args.format, root))
    if check.score(rows) < args.min_score:
        if args.format == "table":
            print(f"below --min-score {args.min_score}")
        return 1
    return 0


def run_retrofit(args) -> int:
    from secure_ml_template import retrofit

    root = retrofit.validate_root(args.path)
    dirty = retrofit.uncommitted(root)
    if dirty and not args.force and not args.dry_run:
        print(f"secure-ml retrofit: {args.path} has {len(dirty)} uncommitted change(s) (e.g. {dirty[0]}); "
              "commit or stash them first so the retrofit is one reviewable diff, or pass --force",
              file=sys.stderr)
        return 1
    answers = retrofit.infer_answers(root, args.name, args.package, args.ci)
    for key in ("tracking", "license", "python_version", "author_name", "author_email"):
        value = getattr(args, key)
        if value is not None:
            answers[key] = value
    before = check.audit(root)
    plan = retrofit.retrofit(root, answers, dry_run=args.dry_run)
    print(f"Retrofit plan for {root}{' (dry run: nothing is changed)' if args.dry_run else ''}")
    print("\n".join(plan.lines()))
    if dirty and args.dry_run and not args.force:
        print(f"note: {len(dirty)} uncommitted change(s): the real run needs them committed, or --force")
    print()
    print("check before:")
    print(check.render(before, "table", root))
    if not args.dry_run:
        print()
        print("check after:")
        print(check.render(check.audit(root), "table", root))
        if not plan.empty:
            print("\nReview the changes (git diff / git status), merge any .template proposals by hand, then commit.")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run_check(args) if args.command == "check" else run_retrofit(args)
    except UsageError as exc:
        print(f"secure-ml {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
