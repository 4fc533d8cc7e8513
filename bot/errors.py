"""Errors shared by every capability (shared ground: imports no capability)."""


class ServiceError(ValueError):
    """A rule was broken; the message is a sentence fit to show a user, in the user's words.

    It never names a CLI flag or a modal field: the CLI and the Slack modal each add their
    own hint (see ``field``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
