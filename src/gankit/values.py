"""A value as a config field takes it: coerced from text, a NumPy scalar or a path to the field's type, then checked,
with a ConfigError naming the field or the function's own argument. config.py's fields and the library's functions
(api, the tasks' uses) read their arguments through these."""

from __future__ import annotations

import math
import os
import re
from dataclasses import fields
from typing import Any

from gankit import registry
from gankit.errors import ConfigError, quote

_INT_EXACT = 2**53  # above this a float no longer holds every integer: 1e23 is not the integer the user typed


def to_type(name: str, value: Any, kind: type) -> Any:
    """`value` as `kind` (bool, int, float or str), read as a config file or a command line writes it: "100" and
    100.0 are 100 for an int, 2.5 is refused; NumPy scalars are their Python numbers, a path is its text. The
    ConfigError names `name` (a field, or a function's own argument)."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():  # np.int64(5), np.float32(.1)
        value = value.item()
    if kind is str and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and kind is not str:
        value = _from_text(name, value, kind)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"expected a finite number, got {quote(value)}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= _INT_EXACT:
            raise ConfigError(name, f"{quote(value)} is too large")
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        if abs(value) >= _INT_EXACT:
            raise ConfigError(name, f"{quote(value)} is too large to be an exact integer")
        return int(value)
    if value is None and kind is str:
        return ""
    if kind is str and isinstance(value, str):
        _check_text(name, value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(name, f"expected {kind.__name__}, got {quote(value)}")
    return value


def _from_text(name: str, value: str, kind: type) -> Any:
    """A bool or a number written as text ("true", "2000", "1e-4")."""
    text = value.strip().lower()
    if kind is bool:
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"expected true or false, got {quote(value)}")
    try:
        return int(text) if kind is int and re.fullmatch(r"[+-]?\d+", text) else float(text)
    except ValueError:  # int() and float() accept 1e-4 and 2000; an int field also takes 1e3 but not 2.5
        raise ConfigError(name, f"expected {kind.__name__}, got {quote(value)}") from None


def _check_text(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a path with bytes that are not UTF-8 (Python keeps them as lone surrogates)
        raise ConfigError(name, f"{quote(value.encode('utf-8', 'replace').decode())} holds bytes that are not "
                                "UTF-8; rename it (config.yaml and TensorBoard store UTF-8 text)") from None
    if "\x00" in value:
        raise ConfigError(name, "holds a NUL character")


def argument(name: str, value: Any, kind: type, lo: float | None = None, hi: float | None = None,
             optional: bool = False) -> Any:
    """A function's own argument (evaluate's n, inpaint's seed, a Search field) checked as a field is: coerced to
    `kind` (to_type), then within [lo, hi]; None passes when `optional`. The ConfigError names the argument."""
    if value is None and optional:
        return None
    value = to_type(name, value, kind)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        show = str if kind is int else (lambda v: f"{v:g}")
        span = (f"from {show(lo)} to {show(hi)}" if lo is not None and hi is not None
                else f">= {show(lo)}" if lo is not None else f"<= {show(hi)}")
        raise ConfigError(name, f"must be {'an integer' if kind is int else 'a number'} {span}, got {quote(value)}")
    return value


def device_argument(name: str, value: Any) -> str:
    """A device argument (auto, cpu, cuda or cuda:N), as the config's `device` field."""
    value = to_type(name, value, str)
    if not registry.DEVICE.match(value):
        raise ConfigError(name, f"{quote(value)} is not one of auto, cpu, cuda, cuda:N")
    return value


def path_argument(name: str, value: Any) -> str:
    """A file or folder argument: a str or os.PathLike, not empty."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(name, f"expected a path (str or pathlib.Path), got {quote(value)}")
    text = to_type(name, value, str)
    if not text:
        raise ConfigError(name, "is empty; give a file or folder")
    return text


def check_types(cfg) -> None:
    """Every field of a config holds its own type (a Config built by hand may hold anything; config.checked()
    converts what can be converted, such as "100" for an int, before it comes here)."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        kind = type(f.default)
        if not (isinstance(value, kind) and (kind is not int or not isinstance(value, bool))) and not (
                kind is float and isinstance(value, int) and not isinstance(value, bool)):
            to_type(f.name, value, kind)  # the field's own error when it cannot be converted at all
            raise ConfigError(f.name, f"expected {kind.__name__}, got {quote(value)} (gankit.config.checked() "
                                      "converts a value written as text)")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f.name, f"expected a finite number, got {quote(value)}")
