"""What the commands share: the parser that fails in one line, flag types, and the flags several commands take."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gankit.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line (no usage block) and exit code 2, and flags are never
    abbreviated (--lr must not silently mean --lr_decay_start)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        say(f"{self.prog}: error: {message}")
        raise SystemExit(2)


def say(message: str) -> None:
    """One line on stderr: line breaks and control characters (a CR in a field name) and lone surrogates (bytes of
    a path that are not UTF-8) are written as escapes."""
    line = " ".join(message.splitlines())
    print("".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in line),
          file=sys.stderr)


def add_force(p) -> None:
    p.add_argument("--force", action="store_true", help="replace output files that exist (refused without it)")


def int_in(lo: int, hi: int, what: str):
    """An argparse type: an integer in [lo, hi] (counts are bounded so that a typo cannot ask for terabytes)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected {what} in {lo}..{hi}, got {value}")
        return value
    return parse


positive_int = int_in(1, 1_000_000, "a positive integer")


seed_arg = int_in(0, 2**32 - 1, "a seed")


step_arg = int_in(0, 10**12, "a step number")


def class_arg(text: str) -> str:
    """--class: a class index or a class name of the run, resolved once the run is loaded (api.class_index)."""
    if not text.strip() or len(text) > 200:
        raise argparse.ArgumentTypeError(f"expected a class index or a class name, got {text[:40]!r}")
    return text.strip()


def checkpoint_arg(text: str):
    """--checkpoint: a step number, or best (checkpoints/best.pt, which keep_best keeps)."""
    return "best" if text == "best" else step_arg(text)


CHECKPOINT_HELP = "use the checkpoint of this step, or best (the best evaluation's, kept by keep_best)"


def psi(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def add_config_flags(p) -> None:
    """One flag per config field, with the field's name; unset flags stay None so they override nothing."""
    from gankit.config import FIELDS

    p.add_argument("--config", help="YAML config file, or a preset name (see `gankit presets`)")
    group = p.add_argument_group("config fields")
    for name, f in FIELDS.items():
        choices = f.metadata.get("choices")
        extra = f" ({'|'.join(map(str, choices))})" if choices else ""
        kwargs = dict(nargs="?", const="true") if isinstance(f.default, bool) else {}
        group.add_argument(f"--{name}", default=None, metavar=name.upper() if not kwargs else "BOOL",
                           help=f"{f.metadata['help']}{extra} [default: {f.default!r}]", **kwargs)


def overrides(args) -> dict:
    from gankit.config import FIELDS

    return {k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}


def add_runs_flag(p) -> None:
    p.add_argument("--runs", default="runs", metavar="DIR",
                   help="where a run given by name is looked up (train's --out) [runs]")


def run_of(args, attr: str = "source") -> Path:
    from gankit.run import find_run

    return find_run(getattr(args, attr), args.runs)


def add_source_flags(p) -> None:
    p.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or name, a checkpoint or an export")
    add_runs_flag(p)
    p.add_argument("--checkpoint", type=checkpoint_arg, default=None, metavar="STEP|best", help=CHECKPOINT_HELP)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--truncation", type=psi, default=1.0, help="pull z towards the prior's centre, psi in (0, 1]")
    add_force(p)


def add_guide_flags(p, default: str) -> None:
    """--weights, --guide and the guides' settings (config.GuideOptions), for sample and eval."""
    from gankit import config, registry

    p.add_argument("--weights", choices=("ema", "raw"), default="ema",
                   help="G's average when the run kept one (ema), or G as trained (raw) [ema]")
    p.add_argument("--guide", choices=tuple(registry.GUIDES), default=None,
                   help="D-guided sampling: " + "; ".join(f"{g.name}: {g.help}" for g in registry.GUIDES.values())
                        + f" {default}")
    opts = config.GuideOptions()
    p.add_argument("--drs-percentile", type=float, default=opts.drs_percentile,
                   help=f"drs: gamma at this percentile of F; higher keeps fewer samples [{opts.drs_percentile:g}]")
    p.add_argument("--mh-steps", type=positive_int, default=opts.mh_steps,
                   help=f"mh: proposals per chain [{opts.mh_steps}]")
    p.add_argument("--ddls-steps", type=positive_int, default=opts.ddls_steps,
                   help=f"ddls: Langevin steps per sample [{opts.ddls_steps}]")
    p.add_argument("--ddls-step-size", type=float, default=opts.ddls_step_size,
                   help=f"ddls: the Langevin step size [{opts.ddls_step_size:g}]")


def guide_options(args, command: str):
    """The guides' settings; one given for a guide other than --guide's is refused rather than ignored."""
    from gankit.config import GuideOptions

    given = {"drs": args.drs_percentile != GuideOptions.drs_percentile, "mh": args.mh_steps != GuideOptions.mh_steps,
             "ddls": (args.ddls_steps, args.ddls_step_size) != (GuideOptions.ddls_steps, GuideOptions.ddls_step_size)}
    for guide, flags in (("drs", "--drs-percentile"), ("mh", "--mh-steps"), ("ddls", "--ddls-steps/--ddls-step-size")):
        if given[guide] and args.guide != guide:
            raise UserError(f"{command}: {flags} sets --guide {guide}, but the guide is {args.guide or 'none'}; add "
                            f"--guide {guide} or leave {flags} out")
    return GuideOptions(drs_percentile=args.drs_percentile, mh_steps=args.mh_steps, ddls_steps=args.ddls_steps,
                          ddls_step_size=args.ddls_step_size)
