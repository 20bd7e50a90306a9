"""Workflow variables: `${name}` in any string of a step.

A variable comes from one source, declared under `vars:`:
  plain string          the value itself           base_image: lab/busybox:1.35
  {value: ...}          the same, longhand
  {file: PATH}          the file's stripped text   (semver: true checks it)
  {git: commit|commit_full|branch|dirty}
  {env: NAME, default}  the environment
Any variable can be overridden on doit's command line: `doit tag version=1.2.0`.

Values are resolved on first use and remembered for the run: a no-op
`doit build_app` never pays for git if no build step names a git variable.
"""
import os
import re
import subprocess

from .errors import StepFailed

TEMPLATE_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Matched whole (fullmatch): `$` would let `1.0.0\n` through.
SEMVER_RE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
GIT_FIELDS = ("commit", "commit_full", "branch", "dirty")


def names_in(text):
    """The variable names a template string refers to."""
    return [m.group(1) for m in TEMPLATE_RE.finditer(text) if m.group(1)]


def names_in_value(value):
    """All variable names used anywhere in a nested YAML value."""
    if isinstance(value, str):
        return names_in(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in names_in_value(v)]
    if isinstance(value, list):
        return [n for v in value for n in names_in_value(v)]
    return []


class Variables:
    """Resolves `${name}` for one workflow file, lazily and once per name."""

    def __init__(self, declared, base_dir, override=None, where=None):
        self.declared = declared or {}
        self.base_dir = base_dir
        self.override = override or (lambda name: None)  # doit's `name=value` arguments
        self._where = where  # name -> `file:line:col` of its declaration, for messages
        self._values = {}

    def label(self, name):
        """How a message names variable `name`: where it is declared, when known."""
        if self._where and name in self.declared:
            return "%s: vars.%s" % (self._where(name), name)
        return "variable ${%s}" % name

    def get(self, name):
        if name not in self._values:
            self._values[name] = self._resolve(name)
        return self._values[name]

    def expand(self, value):
        """`value` with every `${name}` replaced; `$$` stands for one `$`."""
        if isinstance(value, str):
            return TEMPLATE_RE.sub(lambda m: self.get(m.group(1)) if m.group(1) else "$", value)
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        return value

    def _resolve(self, name):
        source = self.declared.get(name)
        forced = self.override(name)
        if forced is not None:
            if isinstance(source, dict) and source.get("semver"):
                _check_semver(self.label(name), "the command line", str(forced))
            return str(forced)
        if source is None:
            raise StepFailed("variable ${%s} is not declared under vars:" % name)
        if not isinstance(source, dict):
            return _text(source)
        if "env" in source:
            value = os.environ.get(source["env"])
            if value is not None:
                return value
            if "default" in source:
                return _text(source["default"])
            raise StepFailed("%s: environment variable %s is not set and no default is given"
                             % (self.label(name), source["env"]))
        if "value" in source:
            return _text(source["value"])
        if "file" in source:
            return self._from_file(name, source)
        if "git" in source:
            return git_value(source["git"], self.base_dir, self.label(name))
        raise StepFailed("%s has no source" % self.label(name))

    def _from_file(self, name, source):
        path = os.path.normpath(os.path.join(self.base_dir, source["file"]))
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as err:
            raise StepFailed("%s: cannot read %s: %s" % (self.label(name), os.path.relpath(path), err.strerror)) \
                from None
        except UnicodeDecodeError as err:
            raise StepFailed("%s: %s is not UTF-8 text (byte %d)" % (self.label(name), os.path.relpath(path), err.start)) \
                from None
        if source.get("semver"):
            _check_semver(self.label(name), os.path.relpath(path), value)
        return value


def _check_semver(label, origin, value):
    if not SEMVER_RE.fullmatch(value):
        raise StepFailed("%s: %s holds %r, not a semantic version like 1.0.0" % (label, origin, value))


def _text(value):
    """A YAML scalar as the string a user wrote: `true`, not Python's `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def git_value(field, start_dir, label):
    """commit (7 hex), commit_full, branch, or dirty ("true"/"false")."""
    if field == "dirty":
        status = _git(["status", "--porcelain", "--untracked-files=no"], start_dir, label)
        return "true" if status.strip() else "false"
    full = _head_commit_from_files(start_dir) if field != "branch" else None
    if field == "branch":
        return _git(["rev-parse", "--abbrev-ref", "HEAD"], start_dir, label).strip()
    if full is None:
        full = _git(["rev-parse", "HEAD"], start_dir, label).strip()
    return full if field == "commit_full" else full[:7]


def _git(args, cwd, label):
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise StepFailed("%s: git is not installed" % label) from None
    if done.returncode != 0:
        raise StepFailed("%s: git %s failed in %s: %s"
                         % (label, " ".join(args), cwd, done.stderr.strip() or done.returncode))
    return done.stdout


def _head_commit_from_files(start_dir):
    """HEAD's commit read straight from .git (no subprocess); None if unsure."""
    directory = os.path.abspath(start_dir)
    while True:
        git_dir = os.path.join(directory, ".git")
        if os.path.isdir(git_dir):
            break
        if os.path.exists(git_dir):
            return None  # a worktree or submodule: let git itself answer
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    try:
        with open(os.path.join(git_dir, "HEAD")) as handle:
            head = handle.read().strip()
        if not head.startswith("ref: "):
            return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head[5:]
        ref_path = os.path.join(git_dir, ref)
        if os.path.exists(ref_path):
            with open(ref_path) as handle:
                return handle.read().strip()
        with open(os.path.join(git_dir, "packed-refs")) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        return None
    return None
