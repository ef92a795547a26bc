"""One entry point for the pipeline stages and project tasks: `python -m PACKAGE COMMAND`."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "prepare": ("data", "load the configured data, keep the profile's features, split it"),
    "validate": ("validate", "check the prepared data against the reference profile"),
    "train": ("train", "fit, save (skops + digest) and track the model"),
    "evaluate": (
        "evaluate",
        "score and attack the verified model (evasion, membership inference); record the run",
    ),
    "keygen": ("signing", "create the model-signing key pair in keys/ once (make setup runs it)"),
}
PIPELINE_STAGES = ("prepare", "validate", "train", "evaluate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text)
    sub.add_parser(
        "profile",
        help="build reference/data_profile.json from the configured data and show the diff",
    )
    sub.add_parser(
        "serve",
        add_help=False,
        help="serve the verified model over HTTP on 127.0.0.1 (token required)",
    )
    args, extra = parser.parse_known_args(argv)
    if args.command == "serve":
        from .serve import main as serve

        return serve(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in (*PIPELINE_STAGES, "profile"):
        from .config import check_params, load_params

        check_params(load_params())
    if args.command == "profile":
        from .data import profile_main

        return profile_main()
    if args.command in PIPELINE_STAGES:
        # A bare `dvc repro` stops at its first stage, within seconds, when the tracking
        # server cannot be used, rather than after training (a no-op for the local store).
        from .tracking import preflight

        preflight()
    module = importlib.import_module(f".{COMMANDS[args.command][0]}", __package__)
    return module.main()


if __name__ == "__main__":
    sys.exit(main())
