"""Which files of a build context Docker sends, following `.dockerignore` as the
engine reads it: Go filepath.Match patterns plus `**`, `!` re-includes, the last
matching line wins, and a pattern that matches a folder excludes all below it.

Written here, not taken from the SDK, because the no-op path cannot afford to
import the SDK; tests compare the two on the same trees.
"""
import os
import re


def read_patterns(context_dir):
    try:
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    patterns = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        patterns.append((negated, _compile(line)))
    return patterns


def _compile(pattern):
    regex, index = "", 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):  # `**/` : zero or more folders
                index += 1
                regex += "(?:.*/)?"
            else:
                regex += ".*"
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                regex += re.escape(char)
            else:
                body = pattern[index + 1:end].replace("\\", "\\\\")
                if body.startswith("^"):
                    body = "!" + body[1:]
                regex += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                index = end
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            regex += re.escape(pattern[index])
        else:
            regex += re.escape(char)
        index += 1
    return re.compile(regex + r"\Z")


def is_excluded(relpath, patterns):
    """True when the last pattern matching `relpath` (or a folder above it) excludes it."""
    excluded = False
    parents = _parents(relpath)
    for negated, regex in patterns:
        if any(regex.match(candidate) for candidate in parents):
            excluded = not negated
    return excluded


def _parents(relpath):
    parts = relpath.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def context_files(context_dir, always=()):
    """Sorted relative paths of the files (and symlinks) Docker would send.
    `always` (the Dockerfile, .dockerignore) is kept even when a pattern excludes it."""
    patterns = read_patterns(context_dir)
    can_reinclude = any(negated for negated, _ in patterns)
    kept = []
    for folder, dirs, names in os.walk(context_dir):
        rel_folder = os.path.relpath(folder, context_dir)
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        if patterns and not can_reinclude:
            dirs[:] = [d for d in dirs if not is_excluded(rel_folder + d, patterns)]
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            relpath = rel_folder + name
            if relpath in always or not (patterns and is_excluded(relpath, patterns)):
                kept.append(relpath)
    return sorted(kept)
