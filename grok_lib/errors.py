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


def run_command(body, interrupted: str = "interrupted; run the same command again to resume",
                on_os_error=None) -> int:
    """Exit status of a command: body() returns it; a GrokError becomes one line on stderr and status 2,
    Ctrl-C one line and 130, and an OSError (when on_os_error(err) names what to check) one line and 2."""
    import sys

    try:
        return body()
    except GrokError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except OSError as err:
        if on_os_error is None:
            raise
        print(f"error: {on_os_error(err)}", file=sys.stderr)
        return 2
