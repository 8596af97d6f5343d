"""gankit's command line: parse the flags, call the library function a Python user calls. No training, metric or
sampling logic lives here.

    __init__.py  main, the parser of every command, and the one place that says a library error in flags
    common.py    the parser that fails in one line, flag types, the flags several commands share
    train.py     train, data, shards, presets
    use.py       sample, interpolate, arithmetic, export, report, eval, serve: a trained run in use
    tasks.py     inpaint, upscale, predict, classify: the tasks' own uses (gankit/tasks/<task>/)
    tools.py     bench, ablate, runs

A user error prints one line naming the problem and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gankit.cli import tasks, tools, train, use
from gankit.cli.common import Parser, say
from gankit.errors import ConfigError, Terminated, UserError

# The library's arguments that a command spells as another flag, or that are no config field: a ConfigError naming
# one of them is shown with its flag (main). Config fields are their own flags, and their errors name them as they are.
FLAGS = {"resume": "--resume", "force": "--force", "config": "--config", "cls": "--class", "step": "--checkpoint",
         "class_grid": "--class-grid", "n": "--n", "a": "--a", "b": "--b", "c": "--c"}


class _Version(argparse.Action):
    """--version: gankit's version, and torch's and Python's, which a bug report needs (torch is imported only
    when asked, so that every other command starts as fast as before)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import platform

        import torch

        from gankit.version import __version__

        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
        print(f"gankit {__version__} (torch {torch.__version__}, {cuda}; Python {platform.python_version()})")
        parser.exit()


# the commands in the order `gankit --help` lists them; each group's module adds its own parsers
COMMANDS = ("train", "bench", "sample", "interpolate", "arithmetic", "export", "report", "eval", "ablate", "shards",
            "inpaint", "upscale", "predict", "classify", "serve", "presets", "runs", "data")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gankit", description="Train, sample, evaluate and explore GANs.")
    parser.add_argument("--version", action=_Version, help="print the versions of gankit, torch and Python")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands = {**train.COMMANDS, **use.COMMANDS, **tasks.COMMANDS, **tools.COMMANDS}
    for name in COMMANDS:
        commands[name](sub)
    return parser


def _error(message: str) -> None:
    say("gankit: error: " + (message or "unknown error"))


def in_flags(e: UserError) -> str:
    """A library error as the command line says it: an argument named by a ConfigError becomes its flag."""
    if isinstance(e, ConfigError) and e.field in FLAGS:
        return FLAGS[e.field] + str(e)[len(e.field):]
    return str(e)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="gankit: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        _error(in_flags(e))
        return 2
    except OSError as e:  # a read-only or full disk, a missing permission: the file system says what and where
        where = f": {e.filename}" if e.filename else ""
        what = e.strerror or (str(e).splitlines() or [type(e).__name__])[0]
        _error(f"{what}{where}")
        return 2
    except KeyboardInterrupt:
        print("gankit: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("gankit: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Exception as e:  # noqa: BLE001: only a failed allocation is turned into a line; anything else is a bug
        text = f"{type(e).__name__}: {e}"
        if isinstance(e, MemoryError) or "OutOfMemoryError" in text or "can't allocate memory" in text:
            _error(f"out of memory ({text.splitlines()[0][:160]}); ask for less (--n, batch_size, model widths)")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
