"""The package's messages go through `logging` (the logger "grok_lib" and its children); progress bars stay
tqdm. Nothing is shown until an entry point configures a handler: the CLI and the batch reproduction call
`configure()` (messages to stderr, the command's results stay on stdout), the notebooks' set-up calls
`configure(stream="stdout")` (stderr would show as red boxes). Turn it down anywhere with
`logging.getLogger("grok_lib").setLevel(logging.WARNING)`; warnings reach stderr even unconfigured."""

from __future__ import annotations

import logging
import sys

LOGGER = "grok_lib"
STREAMS = ("stderr", "stdout")


class _CurrentStream(logging.StreamHandler):
    """A handler writing to whatever sys.stderr / sys.stdout is at the time of each message (a notebook's,
    pytest's capture), not the one that existed when it was made."""

    def __init__(self, name: str):
        super().__init__()
        self._name = name

    @property
    def stream(self):
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property decides
        pass


def configure(level: int = logging.INFO, stream: str = "stderr") -> logging.Logger:
    """Show the package's messages of `level` and above on `stream` ("stderr" or "stdout"), one line each,
    without a prefix. Idempotent: a second call replaces the first's handler."""
    from .errors import require

    require(stream in STREAMS, "stream", f"unknown stream {stream!r}; allowed: {', '.join(STREAMS)}")
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStream)]:
        logger.removeHandler(handler)
    handler = _CurrentStream(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def get(name: str) -> logging.Logger:
    """The logger of module `name` (a child of "grok_lib")."""
    return logging.getLogger(name if name.startswith(LOGGER) else f"{LOGGER}.{name}")
