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


def human_size(count, between=" "):
    """A byte count as the docker CLI prints sizes: decimal units, 3 significant digits
    (476 kB, 5.6 MB, 105 MB). between="" gives the CLI's own `476kB`, for tables read
    beside `docker history`. Unlike the CLI, 999,999 bytes is 1 MB, not 1e+03kB."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if float("%.3g" % size) < 1000:
            return "%.3g%s%s" % (size, between, unit)
        size /= 1000
    return "%.3g%sTB" % (size, between)

