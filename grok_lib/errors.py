"""Errors raised for bad input: each names the argument and what is allowed."""


class GrokError(ValueError):
    """Bad input to grok_lib. The CLI prints it as one line and exits with status 2."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class CheckpointError(GrokError):
    """A stored file is missing, truncated or corrupt."""


def require(condition: bool, field: str, message: str) -> None:
    """Raise GrokError(field, message) unless condition holds."""
    if not condition:
        raise GrokError(field, message)
