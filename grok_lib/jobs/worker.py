"""The Dask worker plugin of grok_lib's clusters (imported only where Dask is used)."""

from __future__ import annotations

import os
import threading
import time

from distributed.diagnostics.plugin import WorkerPlugin


class OneThread(WorkerPlugin):
    """One torch thread per worker and, for local workers (parent given), an exit as soon as the process
    that started the cluster is gone: a killed parent must not leave its workers running. Workers that the
    nanny restarts get the plugin again."""

    name = "grok-one-thread"

    def __init__(self, parent: int | None):
        self.parent = parent

    def setup(self, worker=None):
        import sys

        import torch

        torch.set_num_threads(1)
        sys.setswitchinterval(0.05)  # the worker's event loop then interrupts the task thread less often
        if self.parent is not None:
            threading.Thread(target=exit_with, args=(self.parent,), daemon=True, name="exit-with-parent").start()


def exit_with(parent: int) -> None:
    """Exit this process as soon as its parent is no longer `parent`."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
