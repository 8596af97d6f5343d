"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


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

