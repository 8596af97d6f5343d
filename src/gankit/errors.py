"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Something the user asked for cannot be done (missing folder, unknown name, unreadable file)."""


class ConfigError(UserError):
    """A config field has a bad value. The message names the field and what it accepts."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
