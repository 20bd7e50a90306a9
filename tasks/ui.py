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
        base.add(lambda message: (sys.stdout.write(message), sys.stdout.flush()),
                 format="{message}", level=level, colorize=False)
        log_file = os.environ.get("DOCKFLOW_LOG_FILE")
        if log_file:
            base.add(log_file, level=level, rotation="10 MB", retention=5, format=_file_format)
        _logger = base
    return _logger


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
    logger().info("      | {}", plain(text))


def is_terminal():
    return sys.stdout.isatty()
