#!/usr/bin/env python3
"""Mutation check: do the fast tests notice when the logic changes?

    python3 bench/mutation.py [MODULE ...] [--cap N] [--jobs N] [--all-tests] [--list]

For each module of [tool.dockflow.mutation] in pyproject.toml, small changes are made
to its code, one at a time: a comparison flipped, `and`/`or` swapped, a constant
changed, a condition negated, a return value replaced by None, a statement deleted.
Each such mutant is written into a scratch copy of the tree (the real files are never
touched) and the module's fast tests run against it with -x. A mutant is caught when a
test fails (or the run hangs: a mutant that loops forever); it survives when all pass.
The script prints the score table, then each survivor: the ones the config names as
harmless with its reason, and the others, which want a test (exit status 1).
[tool.dockflow.mutation.only] limits a module to some of its functions (a step kind's
`check`, which its fast decision tests pin; its `run` is the engine tests' part).

Not mutmut: mutmut 3 switches mutants inside the test process (a trampoline reads
MUTANT_UNDER_TEST and records which tests reach which function). Most of our tests
reach the code through a `doit` child process started in a temporary folder, with an
environment the test writes; there the trampoline neither sees the mutant nor records
the hit (boxed/mutmut#338, #511), so those mutants would be reported as untested.
A mutant written to a file is seen by every process the tests start.

Sampling is seeded: a module's mutants are ranked by a hash of the seed and the
mutant's text (not its line), so a run after an unrelated edit tests the same ones.
Slow on purpose (one pytest run per mutant, about 2-6 s): run it by hand, not in CI.
"""
import argparse
import ast
import copy
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY_SKIPS = shutil.ignore_patterns(".git", "__pycache__", ".dockflow", ".pytest_cache", ".benchmarks",
                                    "build", "out", "*.egg-info")
# A mutant's run is stopped (and counted caught) after this many times the
# unmutated run's time, plus a margin for a machine shared with other work.
HANG_FACTOR, HANG_MARGIN_S = 5, 30

FLIPPED = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE,
           ast.LtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BOUNDARY = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
DELETABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise, ast.Break, ast.Continue,
             ast.Delete, ast.Assert)
INLINE_COMMENT = re.compile(r"\s{2,}#.*$")  # PEP 8's two spaces before an inline comment


class Mutant:
    __slots__ = ("module", "line", "qualname", "name", "source")

    def __init__(self, module, line, qualname, name, source):
        self.module = module  # "tasks/graph.py"
        self.line = line
        self.qualname = qualname  # "Workflow.where"; "" at module level
        self.name = name      # "topological_order: `break` -> `pass`": what the config names
        self.source = source  # the whole mutated module


# --- making mutants ----------------------------------------------------------

def mutants_of(module, source):
    """Every mutant of one module's source, in source order, each compiling and
    differing from the original."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    original_dump = ast.dump(tree)
    made, seen_sources, name_counts = [], {source}, {}
    for target, qualname, text in _candidates(tree, lines):
        new_source = _splice(lines, target, text)
        if new_source in seen_sources:
            continue
        try:
            if ast.dump(ast.parse(new_source)) == original_dump:
                continue
            compile(new_source, module, "exec")
        except SyntaxError:
            continue
        seen_sources.add(new_source)
        after = new_source.splitlines(keepends=True)
        name = "%s: `%s` -> `%s`" % (qualname or "<module>", _shown(lines, target.lineno, target.end_lineno),
                                     _shown(after, target.lineno, target.lineno + text.count("\n")))
        name_counts[name] = name_counts.get(name, 0) + 1
        if name_counts[name] > 1:  # the same change on another line of the same function
            name += " (#%d)" % name_counts[name]
        made.append(Mutant(module, target.lineno, qualname, name, new_source))
    return made


def _candidates(tree, lines):
    """(node to replace, qualname, its replacement text) for the six kinds of change."""
    out = []

    def visit(node, qualname, in_function):
        if isinstance(node, ast.JoinedStr):
            return  # node positions inside f-strings are not reliable before 3.12
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = node.name if not qualname else qualname + "." + node.name
            in_function = not isinstance(node, ast.ClassDef) or in_function
            body = node.body[1:] if _is_docstring(node.body[0]) else node.body
            defaults = node.args.defaults + [d for d in node.args.kw_defaults if d] if in_function else []
            for child in node.decorator_list + defaults + body:
                visit(child, qualname, in_function)
            return
        out.extend((target, qualname, text) for target, text in _mutations(node, lines, in_function))
        if _number(node) is not None:
            return  # -1 is one constant, not a minus and a 1
        for child in ast.iter_child_nodes(node):
            if not _is_docstring(child):
                visit(child, qualname, in_function)

    visit(tree, "", False)
    return out


def _mutations(node, lines, in_function):
    """(node to replace, replacement text) for the changes made at `node`."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            for table in (FLIPPED, BOUNDARY):
                if type(op) in table:
                    changed = copy.deepcopy(node)
                    changed.ops[index] = table[type(op)]()
                    yield node, "(%s)" % ast.unparse(changed)
    elif isinstance(node, ast.BoolOp):
        changed = copy.deepcopy(node)
        changed.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield node, "(%s)" % ast.unparse(changed)
    elif _number(node) is not None:
        value = _number(node) + 1
        yield node, repr(value) if value >= 0 else "(%r)" % value
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield node, repr(not node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        yield node, repr(node.value + (b"X" if isinstance(node.value, bytes) else "X"))
    tests = [node.test] if isinstance(node, (ast.If, ast.While, ast.IfExp)) else \
        node.ifs if isinstance(node, ast.comprehension) else []
    for test in tests:
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in FLIPPED):
            yield test, "not (%s)" % _segment(lines, test)  # (a negated `a == b` is the flip's mutant)
    if isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield node, "return None"
    if in_function and isinstance(node, DELETABLE):
        yield node, "pass"


def _number(node):
    """The value of an int or float literal (a leading minus included), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    return None


def _is_none(node):
    return isinstance(node, ast.Constant) and node.value is None


def _is_docstring(node):
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


# --- text surgery ------------------------------------------------------------

def _char_column(line, byte_offset):
    """ast gives UTF-8 byte offsets; slicing wants characters."""
    return len(line.encode()[:byte_offset].decode(errors="ignore"))


def _segment(lines, node):
    first, last = node.lineno - 1, node.end_lineno - 1
    start = _char_column(lines[first], node.col_offset)
    end = _char_column(lines[last], node.end_col_offset)
    if first == last:
        return lines[first][start:end]
    return lines[first][start:] + "".join(lines[first + 1:last]) + lines[last][:end]


def _splice(lines, node, text):
    """The module with `node`'s text replaced by `text`."""
    first, last = node.lineno - 1, node.end_lineno - 1
    head = lines[first][:_char_column(lines[first], node.col_offset)]
    tail = lines[last][_char_column(lines[last], node.end_col_offset):]
    return "".join(lines[:first] + [head + text + tail] + lines[last + 1:])


def _shown(lines, first, last):
    """Lines `first`..`last` (1-based) on one line, less an inline comment: how a
    mutant's name shows the code before and after."""
    shown = " ".join(INLINE_COMMENT.sub("", line).strip() for line in lines[first - 1:last])
    return shown.strip()


# --- running -----------------------------------------------------------------

class Tree:
    """A scratch copy of the project in which one module at a time is mutated."""

    def __init__(self, parent):
        self.root = os.path.join(tempfile.mkdtemp(prefix="dockflow-mutation-", dir=parent), "tree")
        shutil.copytree(REPO, self.root, ignore=COPY_SKIPS, symlinks=True)
        self.process = None  # the test run under way, stopped by stop()

    def write(self, module, source):
        with open(os.path.join(self.root, module), "w", encoding="utf-8") as handle:
            handle.write(source)

    def run_tests(self, tests, pytest_args, timeout=None):
        """'passed', 'failed' or 'hung'."""
        pytest = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *pytest_args, *tests]
        # Under a shell that waits for it, so that a mutant which signals its parent
        # (os.kill(os.getppid(), ...) in a test's "live writer") hits the shell, not us.
        command = ["sh", "-c", '"$@"; exit $?', "sh", *pytest]
        env = dict(os.environ, PYTHONPATH=self.root, PYTHONDONTWRITEBYTECODE="1")
        # Its own session, so that a hung run is stopped with every doit it started.
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            ended = self._ended_within(timeout)
        finally:
            self.stop()  # and whatever it left running (a mutant may strand a doit)
        code, self.process = self.process.returncode, None
        return "hung" if not ended else "passed" if code == 0 else "failed"

    def _ended_within(self, timeout):
        """Whether the shell ended in time. It is left unreaped, so that its process
        group's id cannot go to another process before stop() signals the group."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        except ChildProcessError:
            pass  # reaped by stop() (Ctrl-C)
        return True

    def stop(self):
        """Stop the test run under way and every process it started (its own session)."""
        process = self.process
        if process is not None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # all gone already
            process.wait()


def load_config(path):
    with open(path, "rb") as handle:
        config = tomllib.load(handle)["tool"]["dockflow"]["mutation"]
    for entry in config.get("harmless", []):
        if not entry.get("why", "").strip():
            raise SystemExit("mutation: %s: a harmless survivor needs its `why`: %s" % (path, entry.get("mutant")))
    return config


def sample(mutants, seed, cap):
    """Up to `cap` mutants, the same ones from run to run (ranked by a seeded hash of
    the module and name, so line moves change nothing), in source order."""
    def rank(mutant):
        return hashlib.sha256(("%s\0%s\0%s" % (seed, mutant.module, mutant.name)).encode()).hexdigest()
    chosen = sorted(mutants, key=rank)[:cap] if cap else list(mutants)
    return sorted(chosen, key=lambda m: (m.line, m.name))


def in_functions(mutant, functions):
    """Whether the mutant changes one of `functions` (a method or nested function of
    one counts as part of it)."""
    return any(mutant.qualname == f or mutant.qualname.startswith(f + ".") for f in functions)


def check_module(trees, module, mutants, tests, pytest_args):
    """{mutant name: 'passed' | 'failed' | 'hung'}; the module's tests must pass unmutated."""
    with open(os.path.join(trees[0].root, module), encoding="utf-8") as handle:
        original = handle.read()
    started = time.monotonic()
    if trees[0].run_tests(tests, pytest_args) != "passed":
        raise SystemExit("mutation: the tests of %s fail without any mutant (%s): fix them first"
                         % (module, " ".join(tests)))
    timeout = HANG_FACTOR * (time.monotonic() - started) + HANG_MARGIN_S
    outcomes, todo, lock = {}, list(mutants), threading.Lock()

    def work(tree):
        while True:
            with lock:
                if not todo:
                    break
                mutant = todo.pop(0)
            tree.write(module, mutant.source)
            outcome = tree.run_tests(tests, pytest_args, timeout)
            with lock:
                outcomes[mutant.name] = outcome
                print({"passed": "S", "failed": ".", "hung": "H"}[outcome], end="", file=sys.stderr, flush=True)
        tree.write(module, original)

    workers = [threading.Thread(target=work, args=(tree,), daemon=True) for tree in trees]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except BaseException:  # Ctrl-C, or SIGTERM (see main): no test run outlives us
        todo.clear()
        for tree in trees:
            tree.stop()
        raise
    return outcomes


def _existing(tests):
    """The configured test paths this tree has (a list may name a file still to come)."""
    present = [t for t in tests if os.path.exists(os.path.join(REPO, t.split("::")[0]))]
    for missing in sorted(set(tests) - set(present)):
        print("note: no %s here; left out" % missing, file=sys.stderr)
    if not present:
        raise SystemExit("mutation: none of %s exists" % ", ".join(tests))
    return present


def table(rows, only=None):
    lines = ["| module | mutants | caught | score |", "|---|---|---|---|"]
    for module, total, caught in rows:
        if only and module in only:
            module = "%s (%s)" % (module, ", ".join(only[module]))
        # rounded down: 89.6% must not read as the goal of 90% met
        lines.append("| %s | %d | %d | %s |" % (module, total, caught, "%d%%" % (100 * caught // total) if total else "-"))
    all_total, all_caught = sum(r[1] for r in rows), sum(r[2] for r in rows)
    if len(rows) > 1 and all_total:
        lines.append("| all | %d | %d | %.1f%% |" % (all_total, all_caught, 100.0 * all_caught / all_total))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="paths or names (graph.py) of configured modules; default all")
    parser.add_argument("--cap", type=int, help="mutants per module (0: all); default from the config")
    parser.add_argument("--seed", help="sampling seed; default from the config")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once, each in its own copy")
    parser.add_argument("--all-tests", action="store_true", help="run the whole fast suite, not each module's tests")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants; run nothing")
    args = parser.parse_args(argv)
    config = load_config(os.path.join(REPO, "pyproject.toml"))
    cap = config.get("cap", 60) if args.cap is None else args.cap
    seed = str(config.get("seed", 0) if args.seed is None else args.seed)
    goal = config.get("goal", 0.9)
    modules = config["modules"]
    chosen = [m for m in modules if not args.modules or m in args.modules or os.path.basename(m) in args.modules]
    unknown = set(args.modules) - set(chosen) - {os.path.basename(m) for m in chosen}
    if unknown:
        raise SystemExit("mutation: not in [tool.dockflow.mutation.modules]: %s" % ", ".join(sorted(unknown)))
    harmless = {(e["module"], e["mutant"]): e["why"] for e in config.get("harmless", [])}
    only = config.get("only", {})

    sampled, every_name = {}, set()
    for module in chosen:
        with open(os.path.join(REPO, module), encoding="utf-8") as handle:
            mutants = mutants_of(module, handle.read())
        every_name |= {(module, m.name) for m in mutants}
        if module in only:
            mutants = [m for m in mutants if in_functions(m, only[module])]
        sampled[module] = sample(mutants, seed, cap)
    for module, name in sorted(harmless):
        if module in chosen and (module, name) not in every_name:
            print("note: the harmless list names no mutant of today's code (changed or gone): %s  %s"
                  % (module, name), file=sys.stderr)
    if args.list:
        for module in chosen:
            for mutant in sampled[module]:
                print("%s:%d  %s" % (module, mutant.line, mutant.name))
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up as for Ctrl-C
    scratch = tempfile.mkdtemp(prefix="dockflow-mutation-")
    try:
        trees = [Tree(scratch) for _ in range(max(1, args.jobs))]
        rows, survivors = [], []
        for module in chosen:
            tests = ["tests"] if args.all_tests else _existing(modules[module])
            print("%s (%d mutants, %s) " % (module, len(sampled[module]), " ".join(tests)), end="", file=sys.stderr, flush=True)
            outcomes = check_module(trees, module, sampled[module], tests, config.get("pytest_args", []))
            rows.append((module, len(outcomes), sum(1 for o in outcomes.values() if o != "passed")))
            survivors += [m for m in sampled[module] if outcomes[m.name] == "passed"]
            # as it goes, so that a long run stopped half way still tells what it found
            print(" %d of %d caught" % (rows[-1][2], rows[-1][1]), file=sys.stderr)
            for mutant in sampled[module]:
                if outcomes[mutant.name] == "passed":
                    print("  survived  %s:%d  %s" % (module, mutant.line, mutant.name), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(table(rows, only))
    unexplained = [m for m in survivors if (m.module, m.name) not in harmless]
    for mutant in survivors:
        if (mutant.module, mutant.name) in harmless:
            print("harmless  %s:%d  %s\n          (%s)" % (mutant.module, mutant.line, mutant.name,
                                                          harmless[mutant.module, mutant.name]))
    for mutant in unexplained:
        print("SURVIVED  %s:%d  %s" % (mutant.module, mutant.line, mutant.name))
    caught_now = [key for key in harmless if key[0] in chosen and any(
        m.module == key[0] and m.name == key[1] for m in sampled[key[0]]) and key not in
        {(m.module, m.name) for m in survivors}]
    for module, name in caught_now:
        print("note: caught now, drop it from the harmless list: %s  %s" % (module, name))
    below = [row[0] for row in rows if row[1] and row[2] < goal * row[1]]
    if below:
        print("below the goal of %d%%: %s" % (100 * goal, ", ".join(below)))
    return 1 if unexplained or below else 0


if __name__ == "__main__":
    sys.exit(main())
