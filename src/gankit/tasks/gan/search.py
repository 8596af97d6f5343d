"""The choices of an inpainting search (inpaint.py beside it), apart from it: plain data that the command line reads
for its flags and defaults without loading torch, and the one check of its fields (`checked_search`) that the command
line and the Python API both go through."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from gankit.config import argument, clip, quote, to_type
from gankit.errors import ConfigError

MASKS = ("center", "random", "half")
PRECISIONS = ("auto", "fp32", "bf16")
COUNT_MAX = 1_000_000   # candidates, restarts, steps, batch_size: far above any use, below what exhausts memory
WINDOW_MAX = 255        # the context weights' neighbourhood, pixels a side (Yeh et al. used 7)


@dataclass
class Search:
    """How hard to look: candidate draws in the shared bank, restarts optimised per image, Adam steps and rate, the
    prior's weight."""
    candidates: int = 8192    # draws of z in the bank of candidates that every image shares
    restarts: int = 4
    steps: int = 300
    lr: float = 0.03
    prior_weight: float = 0.003
    window: int = 0            # 0: every known pixel alike; 7: Yeh et al.'s weighting (README's inpainting tables)
    batch_size: int = 256      # images per batch of the search (each with `restarts` latents)
    precision: str = "auto"    # as training's field: bf16 autocast where the hardware runs it fast, else fp32


FIELDS = tuple(f.name for f in dataclasses.fields(Search))


def make_search(fields: dict[str, Any]) -> Search:
    """A Search from keyword fields (gankit.inpaint's **search), checked: an unknown field is named with the close
    one, a bad value by checked_search."""
    for name in fields:
        if name not in FIELDS:
            close = difflib.get_close_matches(str(name), FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(clip(str(name)), f"unknown search field{hint}; the fields are {', '.join(FIELDS)}")
    return checked_search(Search(**fields))


def checked_search(search: Search) -> Search:
    """`search` with each field coerced to its type and within its range, or a ConfigError naming the field (a NaN or
    negative weight would otherwise run the whole search on NaN and write NaN fills)."""
    if not isinstance(search, Search):
        raise ConfigError("search", f"expected a gankit.tasks.gan.inpaint.Search, got {quote(search)}")
    s = search
    counts = {name: argument(name, getattr(s, name), int, 1, COUNT_MAX) for name in ("candidates", "restarts")}
    steps = argument("steps", s.steps, int, 0, COUNT_MAX)
    lr = to_type("lr", s.lr, float)
    if not lr > 0:
        raise ConfigError("lr", f"must be > 0, got {quote(lr)}")
    prior_weight = argument("prior_weight", s.prior_weight, float, 0)
    window = argument("window", s.window, int, 0, WINDOW_MAX)
    if window and window % 2 == 0:
        raise ConfigError("window", f"must be 0 or odd (a neighbourhood centred on its pixel), got {window}")
    batch_size = argument("batch_size", s.batch_size, int, 1, COUNT_MAX)
    precision = to_type("precision", s.precision, str)
    if precision not in PRECISIONS:
        raise ConfigError("precision", f"{quote(precision)} is not one of {', '.join(PRECISIONS)}")
    return Search(**counts, steps=steps, lr=lr, prior_weight=prior_weight, window=window, batch_size=batch_size,
                  precision=precision)
