"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

from typing import Any

QUOTE_CHARS = 60  # an error quotes at most this much of a value: a line, not the megabytes a file may hold


def clip(text: str) -> str:
    """text for an error line, cut to QUOTE_CHARS characters."""
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "..."


def quote(value: Any) -> str:
    """repr(value) for an error line, cut to QUOTE_CHARS characters."""
    return clip(repr(value))


class UserError(Exception):
    """Something the user asked for cannot be done (missing folder, unknown name, unreadable file)."""


class ConfigError(UserError):
    """A config field has a bad value. The message names the field and what it accepts."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class Terminated(BaseException):
    """SIGTERM (what a scheduler sends before it kills a job), raised in the main thread while a run trains, as Ctrl-C
    raises KeyboardInterrupt, so that the run saves its last clean state the same way (session.py)."""

