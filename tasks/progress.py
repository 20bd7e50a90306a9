"""A byte-count progress bar for long saves, transfers and loads: drawn with rich
only when stdout is a terminal; in a log file or CI nothing is drawn (the step's
one summary line says what was done)."""
import contextlib

from . import ui


class _Quiet:
    def advance(self, count):
        pass


class _Bar:
    def __init__(self, progress, task):
        self.progress = progress
        self.task = task

    def advance(self, count):
        self.progress.update(self.task, advance=count)


@contextlib.contextmanager
def bytes_bar(description, total=None):
    """Yield an object whose advance(n) counts n more bytes done."""
    if not ui.is_terminal():
        yield _Quiet()
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    with Progress(TextColumn("   {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), transient=True) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))


def human(count):
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (count, unit)
        count /= 1024.0
