"""Entry point: argument parsing, logging, and mapping errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from faceaudit import __version__
from faceaudit._errors import FaceAuditError
from faceaudit._settings import load_settings

log = logging.getLogger(__name__)

def _command_modules() -> list[str]:
    """Every ``faceaudit.cli._*_cmds`` module; each has ``register(subparsers)``."""
    import pkgutil

    import faceaudit.cli as pkg

    return sorted(
        f"{pkg.__name__}.{m.name}"
        for m in pkgutil.iter_modules(pkg.__path__)
        if m.name.startswith("_") and m.name.endswith("_cmds")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceaudit",
        description="Open face recognition with the ACLU's test and accountability built in.",
    )
    parser.add_argument("--version", action="version", version=f"faceaudit {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default WARNING; logs go to stderr)",
    )
    parser.add_argument("--database", default=None, metavar="URL", help=DATABASE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    import importlib

    for name in _command_modules():
        importlib.import_module(name).register(sub)
    _database_beside_data_dir(parser)
    return parser


DATABASE_HELP = ("where the stores live: postgresql://user@host:port/db (one database shared by several "
                 "hosts), or sqlite:///DATA_DIR; default $FACEAUDIT_DATABASE_URL, else the SQLite files "
                 "in the data dir")


def _database_beside_data_dir(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command that takes ``--data-dir`` also takes ``--database URL`` (``faceaudit log
    verify --database URL`` as well as ``faceaudit --database URL log verify``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                flags = {o for a in command._actions for o in a.option_strings}
                if "--data-dir" in flags and "--database" not in flags:
                    # SUPPRESS: not given here leaves the top-level flag's value in place
                    command.add_argument("--database", default=argparse.SUPPRESS, metavar="URL",
                                         help=DATABASE_HELP)
                _database_beside_data_dir(command)


SPELLINGS = {("report", "usage"): "report-usage"}
"""Two-word commands that would clash with a one-word command's positional argument
(``faceaudit report DIR``): ``faceaudit report usage ...`` runs ``report-usage``."""


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """Exit 2 with the usage of the (sub)command that was typed, not the top level's, and a
    did-you-mean for a misspelt flag (``search --treshold`` -> ``--threshold``)."""
    import difflib

    command = parser
    while True:  # follow the subcommands the namespace says were chosen
        chosen = None
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
        if chosen is None:
            break
        command = chosen
    flags = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for word in extras:
        if word.startswith("-"):
            close = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1)
            if close:
                hints.append(f"{word}: did you mean {close[0]}?")
    message = "unrecognized arguments: " + " ".join(extras)
    command.error(message + "".join(f"\n  {h}" for h in hints))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    typed = list(sys.argv[1:] if argv is None else argv)
    argv = typed
    for words, command in SPELLINGS.items():
        if tuple(argv[:len(words)]) == words:
            argv = [command, *argv[len(words):]]
    args, extras = parser.parse_known_args(argv)
    if extras:
        _unrecognized(parser, args, extras)
    args.argv = typed  # the command line as typed (audits record it)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        # the one place the settings are loaded: flags > environment > defaults
        args.settings = load_settings(data_dir=getattr(args, "data_dir", None),
                                      database_url=getattr(args, "database", None))
        return int(handler(args) or 0)
    except FaceAuditError as exc:
        print(f"faceaudit: {exc.aws_code}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("faceaudit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the edge: no traceback for users, full one in debug logs
        log.debug("unexpected error", exc_info=True)
        print(f"faceaudit: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
