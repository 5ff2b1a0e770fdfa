"""A progress bar for long pretraining runs: step, loss (running mean), elapsed time and ETA
(rich); without a terminal (a log file, CI), one plain line every `every_s` seconds instead."""
from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressLine:
    def __init__(self, total_steps: int, label: str, every_s: float = 60.0) -> None:
        self.total, self.label, self.every_s = total_steps, label, every_s
        self.start = self.last = time.monotonic()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn())
        self.task = self.progress.add_task(label, total=total_steps, loss="-")
        self.recent: list[float] = []

    def update(self, step: int, loss: float) -> None:
        self.recent = (self.recent + [loss])[-50:]
        mean = sum(self.recent) / len(self.recent)
        self.progress.update(self.task, completed=step + 1, loss=f"{mean:.4f}")
        now = time.monotonic()
        if not self.progress.console.is_terminal and now - self.last >= self.every_s:
            self.last, done = now, step + 1
            eta = (now - self.start) / done * (self.total - done)
            print(f"{self.label}: step {done}/{self.total}  loss {mean:.4f}  elapsed {now - self.start:.0f} s  "
                  f"eta {eta:.0f} s", flush=True)

    def log(self, message: str) -> None:
        self.progress.console.log(message)

    def __enter__(self) -> "ProgressLine":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()
