"""What a run tells the user, through loguru where a log file asks for it or a program imports us.

Lines go to whatever sys.stdout is at the time (doit swaps it when it captures).
A line of a tool's own output (a build's) carries its step's name, aligned with the
other steps of the run (`build_app | Step 1/4 ...`): steps run at once (doit -n N)
print their lines as they come, and each line still says whose it is.

DOCKFLOW_LOG_FILE adds a rotating text log, e.g. for a scheduled prune. Beside it a
JSON log gets one object per line (loguru's serialize=True) for each step's start
and result, with its reason and duration, and prune's record: DOCKFLOW_LOG_JSON if
set, else DOCKFLOW_LOG_FILE with `.jsonl` for its `.log` (`prune.log` ->
`prune.jsonl`). A failed step is in both. DOCKFLOW_LOG_LEVEL=DEBUG shows more.

loguru has one logger per process, shared with a program that imports us: our sinks
take only the records logged here, and only their ids are ever removed (remove_sinks).
loguru's own default stderr sink goes only in a doit run of ours (claim_output), where
it would show every line twice.
"""
import contextlib
import os
import sys
import threading

_logger = None
_sink_ids: list[int] = []            # the loguru handler ids added here: the only ones we remove
_claimed = [False]        # claim_output() was called: this process is a doit run of ours
_running = threading.local()  # .step: the step this thread runs (doit -n N -P thread: one per worker)
_name_width = [0]         # the longest step name of this run, for aligned line tags


def logger():
    global _logger
    if _logger is None:
        from loguru import logger as base

        if _claimed[0]:
            with contextlib.suppress(ValueError):  # already removed by someone else
                base.remove(0)  # loguru's default stderr sink, added when loguru is imported
        level = os.environ.get("DOCKFLOW_LOG_LEVEL", "INFO")
        _sink_ids.append(base.add(lambda message: PipeSafe(sys.stdout).write(message, flush=True),
                                  format="{message}", level=level, colorize=False, filter=_for_stdout))
        log_file = os.environ.get("DOCKFLOW_LOG_FILE")
        if log_file:
            _sink_ids.append(base.add(log_file, level=level, rotation="10 MB", retention=5, format=_file_format,
                                      filter=_for_text_log))
        json_file = json_log_path()
        if json_file:
            _sink_ids.append(base.add(json_file, level=level, rotation="10 MB", retention=5, serialize=True,
                                      format="{message}", filter=_for_json_log))
        _logger = base
    return _logger


def claim_output():
    """This process is a doit run of a dockflow project (tasks/dodo.py): our sinks are
    its output, and loguru's default stderr sink would print each line twice."""
    _claimed[0] = True


def remove_sinks():
    """Remove the sinks added here, and only them (a program that imports us keeps its own)."""
    global _logger
    if _logger is not None:
        for sink_id in _sink_ids:
            with contextlib.suppress(ValueError):
                _logger.remove(sink_id)
    _sink_ids.clear()
    _logger = None


def json_log_path():
    """The JSON log's path, or None when no log is asked for."""
    path = os.environ.get("DOCKFLOW_LOG_JSON")
    if path is not None:
        return path or None  # DOCKFLOW_LOG_JSON= (empty): no JSON log
    log_file = os.environ.get("DOCKFLOW_LOG_FILE")
    if not log_file:
        return None
    return (log_file[:-len(".log")] if log_file.endswith(".log") else log_file) + ".jsonl"


def logs_wanted():
    """A log file of either kind is asked for (checked before loguru is imported)."""
    return bool(os.environ.get("DOCKFLOW_LOG_FILE") or json_log_path())


# Which records each sink takes. A record carrying `event` is for the JSON log; one
# carrying `file_only` is a line stderr has shown already (a FAILED line).
def _ours(record):
    return record["name"] == __name__


def _for_stdout(record):
    return _ours(record) and "event" not in record["extra"] and not record["extra"].get("file_only")


def _for_text_log(record):
    return _ours(record) and "event" not in record["extra"]


def _for_json_log(record):
    return _ours(record) and "event" in record["extra"]


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


def alone():
    """True where a step has the output to itself: doit's own process and thread. A
    worker of doit -n N may run beside another, whose lines would cut through a
    progress bar."""
    return in_main_process() and threading.current_thread() is threading.main_thread()


class RunStopped(SystemExit):
    """The run stops with exit status `code` (130: Ctrl-C, 141: its reader is gone),
    raised inside the running step so that it unwinds (temp files removed, the
    engine's build stopped). A worker of doit -n N hands a SystemExit on to doit's own
    process as its class and str(code), which raises it again there: hence int()."""

    def __init__(self, code):
        super().__init__(int(code))
        if self.code == 141:
            _silence_stdout()  # what is still buffered (doit's own process too) goes nowhere


def _reader_gone():
    if not in_main_process():
        unwinding()
    raise RunStopped(141)


def unwinding():
    """A worker of doit -n N stops its step: the SIGTERM doit then sends it (or a second
    Ctrl-C) must not cut its clean-up short."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not its main thread: then that thread's signal stops it
            signal.signal(signum, signal.SIG_IGN)


def _silence_stdout():
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _file_format(record):
    # A structured line stays pure JSON in the file too, for monitoring to parse; a
    # FAILED line reads as on stderr (which a scheduled run appends to this file too).
    if record["extra"].get("structured") or record["extra"].get("file_only"):
        return "{message}\n"
    return "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level} {message}\n"


def record(event):
    """One structured log line: the JSON object `event`, alone on its line (output and
    text log), and the same fields as a record of the JSON log."""
    import json

    _emit("INFO", json.dumps(event, sort_keys=True), structured=True)
    if json_log_path():
        logger().bind(**event).info("{}: {}", event.get("step", "dockflow"), event.get("event", "record"))


def step_event(step_name, status, message, error=False, **fields):
    """One record of the JSON log about a step: `status` (started, done, failed, up to
    date) and `fields` (reason, duration_s, error), with `message` as its text."""
    if json_log_path():
        logger().bind(event="dockflow.step", step=step_name, status=status, **fields).log(
            "ERROR" if error else "INFO", "{}: {}", step_name, message)


def failed(step_name, message):
    """A step's one FAILED line: on stderr, and in the text log if there is one. A
    scheduled run's stderr is that log already (tasks/schedule.py appends it there):
    then the line is written once."""
    line = "FAILED %s: %s" % (step_name, message)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    log_file = os.environ.get("DOCKFLOW_LOG_FILE")
    if log_file and not _is_stderr(log_file):
        logger().bind(file_only=True).error("{}", line)


def _is_stderr(path):
    try:
        return os.path.samestat(os.fstat(sys.stderr.fileno()), os.stat(path))
    except (OSError, ValueError):  # no such file yet, or a stderr with no descriptor
        return False


def say(step_name, message):
    _emit("INFO", "   %s: %s" % (step_name, message))


def warn(step_name, message):
    _emit("WARNING", "   %s: warning: %s" % (step_name, message))


_direct_lock = threading.Lock()  # doit -P thread: one line at a time, as loguru's own lock does


def _emit(level, text, **bind):
    """One line of the run's output. Straight to stdout in a doit run of ours with no
    log file and the default level: loguru adds nothing there, and importing it costs
    ~40 ms (asyncio and more) of every run that prints, on its way to the first step."""
    if _claimed[0] and _logger is None and not logs_wanted() and "DOCKFLOW_LOG_LEVEL" not in os.environ:
        with _direct_lock:
            PipeSafe(sys.stdout).write(text + "\n", flush=True)
    else:
        logger().bind(**bind).log(level, "{}", text)


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


@contextlib.contextmanager
def step_lines(step_name):
    """While the block runs, detail() lines of this thread carry `step_name`."""
    previous = getattr(_running, "step", None)
    _running.step = step_name
    try:
        yield
    finally:
        _running.step = previous


def align_names(step_names):
    """The steps of this run: their tags are padded to the longest name."""
    _name_width[0] = max(map(len, step_names), default=0)


def detail(text):
    """One line of a tool's own output (a build's), tagged with its step's name."""
    _emit("INFO", tagged(text))


def tagged(text):
    step_name = getattr(_running, "step", None)
    if step_name is None:  # not inside a step (a command's own output)
        return indented([text])
    return "   %s | %s" % (step_name.ljust(_name_width[0]), plain(text))


def indented(lines):
    """Lines of a tool's output as quoted under a failure (the tail of a build's)."""
    return "\n".join("      | " + plain(line) for line in lines)


def is_terminal():
    """True where a live progress meter may be drawn: the output is a terminal, and the
    step has it to itself (see alone)."""
    return sys.stdout.isatty() and alone()
