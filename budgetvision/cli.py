"""The command line: parse and dispatch only. Every user error becomes one line on stderr, exit 2.
Each command's flags and handler live together in budgetvision/commands/."""
from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS
from .commands._common import say as _say
from .errors import BudgetVisionError, StopRequested


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not a usage dump
        self.exit(2, f"budgetvision: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="budgetvision", description="Image models under hard parameter and step budgets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "threads"):   # every command that computes
            from .device import set_threads
            set_threads(args.threads)
        return args.func(args)
    except StopRequested as e:   # SIGINT / SIGTERM: the checkpoint is written, the line says how to go on
        _say(f"budgetvision: {e}", file=sys.stderr)
        return 128 + e.signum
    except BudgetVisionError as e:
        _say(f"budgetvision: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a vanished or read-only folder: say which file, once
        where = f" ({e.filename})" if e.filename else ""
        _say(f"budgetvision: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:   # a second Ctrl-C while training names its run folder
        run = e.args[0] if e.args else getattr(args, "resume", None)
        _say("budgetvision: interrupted" + (f"; continue with 'budgetvision train --resume {run}'" if run else ""),
             file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
