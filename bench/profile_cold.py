#!/usr/bin/env python3
"""Where a cold lab run's time goes, step by step, on both sides (bench_build.py's case 2).

    python3 bench/profile_cold.py [--runs 5] [--serial]

Same set-up as bench_build.py's cold case (its Lab: the lab's images removed, each
side's registry new and empty, started untimed), the sides run in turns. For
`doit push load` a dodo.py that wraps tasks/dodo.py records, per process, when doit's
module import ended, each step's up-to-date check (doit's own process) and each
step's action (the worker that ran it); for `make all` a SHELL wrapper records each
recipe line. It prints the medians: when each piece started and how long it took,
in seconds from the command's start, and what of the wall time no step covers.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_build as bb  # noqa: E402

TRACE_DODO = '''
import json, os, time
_T0 = float(os.environ["PROFILE_T0"])
_OUT = os.environ["PROFILE_OUT"]
def _note(name, phase, start, end):
    line = json.dumps({"name": name, "phase": phase, "pid": os.getpid(), "start": start - _T0, "end": end - _T0})
    fd = os.open(_OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\\n").encode()); os.close(fd)
_start = time.time()
from tasks import doit_tasks as plan
_check, _run = plan.check_step, plan.run_step
def check_step(task, values, name):
    start = time.time()
    try:
        return _check(task, values, name)
    finally:
        _note(name, "check", start, time.time())
def run_step(name, task):
    start = time.time()
    try:
        return _run(name, task)
    finally:
        _note(name, "run", start, time.time())
plan.check_step, plan.run_step = check_step, run_step  # before tasks.dodo makes the task dicts
from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401,E402
_note("(import dodo.py, load workflows)", "load", _start, time.time())
import atexit
_main = os.getpid()
atexit.register(lambda: os.getpid() == _main and _note("(atexit of doit's process)", "exit", time.time(), time.time()))
'''

MAKE_SHELL = '''#!/bin/sh
start=$(date +%s.%N)
/bin/sh "$@"; code=$?
printf '{"name": "%s", "phase": "recipe", "pid": %d, "start": %s, "end": %s}\\n' \
  "$(printf %s "$2" | head -c 60 | tr '"\\\\' "''")" $$ "$start" "$(date +%s.%N)" >> "$PROFILE_OUT"
exit $code
'''


def traced_run(command, cwd, out, shift_make=False):
    """Run `command`, its trace written to `out`; (wall seconds, the trace's records)."""
    if os.path.exists(out):
        os.unlink(out)
    env = dict(bb.ENV, PROFILE_OUT=out)
    start_wall = time.time()
    env["PROFILE_T0"] = repr(start_wall)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit("profile: %s failed:\n%s%s" % (command, done.stdout[-2000:], done.stderr[-2000:]))
    records = []
    with open(out) as handle:
        for line in handle:
            record = json.loads(line)
            if shift_make:
                record["start"] -= start_wall
                record["end"] -= start_wall
            records.append(record)
    return wall, records, done.stdout


def summarize(title, walls, traces):
    print("\n%s: wall median %.3f s (runs: %s)" % (title, statistics.median(walls),
                                                   ", ".join("%.2f" % w for w in walls)))
    keys = []
    for trace in traces:
        for record in trace:
            key = (record["phase"], record["name"])
            if key not in keys:
                keys.append(key)
    rows = []
    for key in keys:
        starts = [r["start"] for t in traces for r in t if (r["phase"], r["name"]) == key]
        lengths = [r["end"] - r["start"] for t in traces for r in t if (r["phase"], r["name"]) == key]
        rows.append((statistics.median(starts), key, statistics.median(lengths), len(starts)))
    print("  %8s %8s %8s  %-6s %s" % ("start", "took", "end", "phase", "step"))
    for start, (phase, name), length, count in sorted(rows):
        print("  %8.3f %8.3f %8.3f  %-6s %s%s" % (start, length, start + length, phase, name,
                                                 "" if count == len(traces) else "  (in %d runs)" % count))
    middle = sorted(range(len(walls)), key=walls.__getitem__)[len(walls) // 2]
    print("  the run of median wall time (%.3f s), as it went (gap: since the previous piece ended):"
          % walls[middle])
    reach = 0.0
    for record in sorted(traces[middle], key=lambda r: r["start"]):
        print("  %8.3f %8.3f %8.3f  %-6s %s   gap %6.3f" % (record["start"], record["end"] - record["start"],
                                                         record["end"], record["phase"], record["name"],
                                                         record["start"] - reach))
        reach = max(reach, record["end"])
    print("  %8.3f %8s %8s  %-6s %s   gap %6.3f" % (walls[middle], "", "", "end", "(process ended)",
                                                  walls[middle] - reach))
    covered = [_covered(t) for t in traces]
    print("  covered by some traced piece: %.3f s; not covered (start-up, exit, gaps): %.3f s"
          % (statistics.median(covered), statistics.median(w - c for w, c in zip(walls, covered))))


def _covered(trace):
    spans = sorted((r["start"], r["end"]) for r in trace)
    total, reach = 0.0, None
    for start, end in spans:
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serial", action="store_true", help="also `doit -n 0 push load`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockflow-profile-") as root:
        project, make_dir = bb.make_project(root), bb.make_copy(root)
        with open(os.path.join(project, "dodo_trace.py"), "w") as handle:
            handle.write(TRACE_DODO)
        shell = os.path.join(root, "traced-sh")
        with open(shell, "w") as handle:
            handle.write(MAKE_SHELL)
        os.chmod(shell, 0o755)
        lab = bb.Lab(project, make_dir)
        out = os.path.join(root, "trace.jsonl")
        sides = [("doit push load", lab.ours(), project, "ours")]
        if args.serial:
            sides.append(("doit -n 0 push load", lab.ours("-n", "0"), project, "ours"))
        sides.append(("make all", lab.make() + ["SHELL=" + shell], make_dir, "make"))
        results = {title: ([], []) for title, *_ in sides}
        try:
            lab.start()
            for _ in range(args.runs):
                for title, command, cwd, side in sides:
                    lab.empty(side)
                    if side == "ours":
                        command = command[:3] + ["-f", "dodo_trace.py"] + command[3:]
                    wall, trace, _ = traced_run(command, cwd, out, shift_make=side == "make")
                    results[title][0].append(wall)
                    results[title][1].append(trace)
        finally:
            lab.stop()
    load = os.getloadavg()
    for title, (walls, traces) in results.items():
        summarize(title, walls, traces)
    print("\nload average at the end: %.2f %.2f %.2f" % load)


if __name__ == "__main__":
    main()
