"""What a run tells the user, through loguru (imported only when a step runs).

Lines go to whatever sys.stdout is at the time (doit swaps it when it captures).
DOCKFLOW_LOG_FILE adds a rotating log file, e.g. for a scheduled prune;
DOCKFLOW_LOG_LEVEL=DEBUG shows more.
"""
import os
import sys

_logger = None


def logger():
    global _logger
    if _logger is None:
        from loguru import logger as base

        base.remove()
        level = os.environ.get("DOCKFLOW_LOG_LEVEL", "INFO")
        base.add(lambda message: PipeSafe(sys.stdout).write(message, flush=True),
                 format="{message}", level=level, colorize=False)
        log_file = os.environ.get("DOCKFLOW_LOG_FILE")
        if log_file:
            base.add(log_file, level=level, rotation="10 MB", retention=5, format=_file_format)
        _logger = base
    return _logger


class PipeSafe:
    """A stream whose reader going away (`doit build_app | head -2`) stops the run
    as SIGPIPE stops a command, but as an exception: the running step unwinds (temp
    files removed, the engine's build stopped), doit records the steps done, and the
    run exits 141 (128 + SIGPIPE) with no traceback."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text, flush=False):
        try:
            written = self._stream.write(text)
            if flush:
                self._stream.flush()
            return written
        except BrokenPipeError:
            _reader_gone()

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            _reader_gone()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def stdout_pipe_safe(execute):
    """For a command's execute(): its prints and writes to stdout go through PipeSafe,
    so `doit plan | head -1` ends as quietly as a run does."""
    import functools

    @functools.wraps(execute)
    def wrapper(command, *args, **kwargs):
        real = sys.stdout
        sys.stdout = PipeSafe(real)
        if getattr(command, "outstream", None) is real:
            command.outstream = sys.stdout
        try:
            result = execute(command, *args, **kwargs)
            sys.stdout.flush()
            return result
        finally:
            sys.stdout = real
    return wrapper


_MAIN_PID = os.getpid()  # doit's own process (forked workers of -P process inherit this value)


def in_main_process():
    """True in doit's own process, not in a worker of doit -n N -P process."""
    return os.getpid() == _MAIN_PID


def _reader_gone():
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, at exit too
    os.close(devnull)
    import threading

    if in_main_process() and threading.current_thread() is threading.main_thread():
        raise SystemExit(141)
    # A worker of doit -n N: doit would report its SystemExit as a failure (exit 1,
    # "141"). It goes on writing nowhere; doit's own process stops at its next line.


def _file_format(record):
    # A structured line stays pure JSON in the file too, for monitoring to parse.
    if record["extra"].get("structured"):
        return "{message}\n"
    return "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level} {message}\n"


def record(event):
    """One structured log line: the JSON object `event`, alone on its line."""
    import json

    logger().bind(structured=True).info("{}", json.dumps(event, sort_keys=True))


def say(step_name, message):
    logger().info("   {}: {}", step_name, message)


def warn(step_name, message):
    logger().warning("   {}: warning: {}", step_name, message)


# A terminal's escape sequences (colours, cursor moves): the legacy builder colours a
# RUN's stderr red, which a log file or cron mail shows as ^[[91m.
_ESCAPE_RE = None


def plain(text):
    """`text` without terminal escape sequences."""
    global _ESCAPE_RE
    if "\x1b" not in text:
        return text
    if _ESCAPE_RE is None:
        import re

        _ESCAPE_RE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
    return _ESCAPE_RE.sub("", text)


def detail(text):
    """One line of a tool's own output (a build's), indented under its step."""
    logger().info("{}", indented([text]))


def indented(lines):
    """Lines of a tool's output as `detail` shows them: for the tail a failure quotes."""
    return "\n".join("      | " + plain(line) for line in lines)


def is_terminal():
    return sys.stdout.isatty()
