"""``python -m stemserve.jobs worker ...``: the worker command on its own, for tests and for
images that run workers only (``stemserve worker`` is the same command)."""

from __future__ import annotations

import argparse
import logging
import sys

from stemserve.core.settings import Settings
from stemserve.jobs.cli import add_commands, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stemserve.jobs")
    parser.add_argument("--model-repository", metavar="DIR[:DIR...]")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return run(args, Settings.load({"model_repository": args.model_repository}))


if __name__ == "__main__":
    sys.exit(main())
