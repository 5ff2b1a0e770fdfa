"""Console progress for long work (rich), kept apart from the study logic."""
from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class _StudyProgress:
    def __init__(self, progress: Progress, console: Console) -> None:
        self.progress, self.console = progress, console
        self.task = progress.add_task("study", total=None)

    def update(self, text: str, done: int, total: int) -> None:
        self.progress.update(self.task, description=f"units done {done}/{total} · {text}", completed=done, total=total)

    def log(self, text: str) -> None:
        self.console.log(text)


@contextmanager
def console_progress():
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console,
                  transient=True) as progress:
        yield _StudyProgress(progress, console)
