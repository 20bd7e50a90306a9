"""What one run of dockflow keeps in memory, in one place.

A doit run loads the project once (dodo.py) and then calls our checks and actions
by step name, in this process or in forked workers: what they share lives here,
not in private globals of the modules that fill it. `reset()` forgets all of it;
tests that load several projects in one process call it.

Not run state, and kept where it is used: the loguru sinks of ui.py and the worker
watcher of workers.py (this process's own output and children), the schema's bytes
(workflow.py) and the cache secret (files.py), read once per process.
"""
from __future__ import annotations

from typing import Any

# The values are Project, Verdict, Engine...: typed Any here, so that this module, which
# every other reads, imports none of them.


class RunState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # The project dodo.py loaded: its steps, what each needs, its folders.
        self.project: Any = None
        # step name -> the Verdict of its check in this process (why it runs).
        self.verdicts: dict[str, Any] = {}
        # engine address -> Engine: one kept-alive connection and one inspect cache each.
        self.engines: dict[str, Any] = {}
        # (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG) -> (host, TLS files or None).
        self.endpoints: dict[tuple[str, str, str], tuple[str, dict[str, Any] | None]] = {}
        # tar-hashes file -> {tar path: stats}: the sha256s save learnt, for transfer and load.
        self.tars: dict[str, dict[str, list[Any]]] = {}
        # (ssh address, options, remote socket) -> (ssh process, local unix:// address).
        self.tunnels: dict[Any, tuple[Any, str]] = {}


RUN = RunState()


def reset() -> None:
    RUN.reset()
