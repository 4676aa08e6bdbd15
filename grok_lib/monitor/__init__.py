"""Complexity monitoring for any PyTorch training loop (docs/monitor.md).

    from grok_lib.monitor import ComplexityMonitor

    with ComplexityMonitor(model, F.cross_entropy, (x, y), test_data=(xt, yt), csv="complexity.csv",
                           tensorboard="tb") as monitor:
        for step in range(steps):
            ...  # one optimizer step
            monitor.step(step)
"""

from .core import ComplexityMonitor
from .schedule import Schedule, log_steps
from .sinks import CsvSink, TensorBoardSink, WandbSink, read_wandb_history, tag

__all__ = ["ComplexityMonitor", "Schedule", "log_steps", "CsvSink", "TensorBoardSink", "WandbSink",
           "read_wandb_history", "tag"]
