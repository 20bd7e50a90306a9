"""Which files of a build context Docker sends, following `.dockerignore` as the
Docker CLI reads it (moby's patternmatcher and archive walk):
- a line whose first character is `#` is a comment (`  #x` is a pattern); a line is
  trimmed; `!` re-includes (a lone `!` is an error); patterns are cleaned like Go's
  filepath.Clean and lose one leading `/`;
- `*` and `?` never cross `/`; `**` crosses any number of folders; `[...]` is a
  Go regexp class (so `[^a]` negates and `[!a]` means `!` or `a`); `\\` escapes;
  matching is case-sensitive;
- the last pattern matching a path or one of its parent folders wins;
- an excluded folder is not entered unless a `!` pattern's text starts with it;
- the Dockerfile and .dockerignore are always sent (as `!NAME` patterns, added
  only when a pattern excludes them).

Written here, not taken from the SDK, because the no-op path cannot afford to
import the SDK, and the SDK's own matcher differs from Docker's (it ignores case,
reads `[!a]` as a negation, has no `\\` escapes); tests/test_dockerignore.py
compares both with what the docker CLI really sends.
"""
import os
import posixpath
import re
import warnings

from .errors import StepFailed

_ESCAPED = set(".+()|{}$")  # regexp specials that mean nothing in a path pattern


class Pattern:
    __slots__ = ("text", "exclusion", "_kind", "_regex")

    def __init__(self, text, exclusion):
        self.text = text
        self.exclusion = exclusion
        self._kind, self._regex = _compile(text)

    def matches(self, path):
        if self._kind == "exact":
            return path == self.text
        if self._kind == "prefix":  # `dir/**`, `name**`
            return path.startswith(self.text[:-2])
        if self._kind == "suffix":  # `**/name`, `**name`
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self._regex.match(path) is not None

    def matches_or_parent(self, path):
        if self.matches(path):
            return True
        parts = path.split("/")[:-1]
        return any(self.matches("/".join(parts[:i])) for i in range(1, len(parts) + 1))


def _clean(pattern):
    """Go's filepath.Clean, then one leading `/` dropped (as the CLI does)."""
    pattern = posixpath.normpath(re.sub("/+", "/", pattern))
    return pattern[1:] if len(pattern) > 1 and pattern.startswith("/") else pattern


def read_patterns(context_dir):
    """[Pattern] of the context's .dockerignore, in order."""
    try:
        # Bytes that are not UTF-8 stay as os.listdir names them (surrogateescape): a Latin-1
        # pattern matches the Latin-1 file name, as Docker's byte-wise matching does.
        with open(os.path.join(context_dir, ".dockerignore"), encoding="utf-8-sig", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    patterns = []
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue  # as Docker reads it: `  #x` is a pattern, not a comment
        line = line.strip()
        if not line:
            continue
        where = "%s:%d" % (os.path.join(context_dir, ".dockerignore"), number)
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise StepFailed("%s: illegal exclusion pattern \"!\" (Docker refuses it too)" % where)
        try:
            patterns.append(Pattern(_clean(line), exclusion))
        except re.error as err:
            raise StepFailed("%s: bad pattern %r: %s" % (where, line, err)) from None
    return patterns


def _compile(pattern):
    """(kind, regex): the same four kinds of match as moby's patternmatcher."""
    regex, kind, index = "", "exact", 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            if pattern.startswith("*", index):
                first = index == 1
                index += 1
                if pattern.startswith("/", index):  # `**/` counts as `**`
                    index += 1
                if index == len(pattern):
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex, kind = regex + ".*", "regex"
                else:
                    regex, kind = regex + "(?:.*/)?", "regex"
                if first:
                    kind = "suffix"
            else:
                regex, kind = regex + "[^/]*", "regex"
        elif char == "?":
            regex, kind = regex + "[^/]", "regex"
        elif char in _ESCAPED:
            regex += "\\" + char
        elif char == "\\":
            if index < len(pattern):
                regex, kind = regex + re.escape(pattern[index]), "regex"
                index += 1
            else:
                regex += "\\\\"
        elif char in "[]":
            regex, kind = regex + char, "regex"
        else:
            regex += char
    if kind != "regex":
        return kind, None
    with warnings.catch_warnings():  # `[?` reads as a possible nested set to re: a FutureWarning, not ours
        warnings.simplefilter("ignore", FutureWarning)
        return kind, re.compile(regex + r"\Z")


def is_excluded(relpath, patterns):
    """True when the last pattern matching `relpath` (or a folder above it) excludes it."""
    excluded = False
    for pattern in patterns:
        if pattern.exclusion != excluded:
            continue  # cannot change the answer
        if pattern.matches_or_parent(relpath):
            excluded = not pattern.exclusion
    return excluded


def _may_reinclude(rel_dir, patterns):
    """Whether the CLI enters an excluded folder: a `!` pattern names something in it."""
    prefix = rel_dir + "/"
    return any(p.exclusion and (p.text + "/").startswith(prefix) for p in patterns)


def context_files(context_dir, always=(), folders=None):
    """Sorted relative paths of the files (and symlinks) Docker would send.
    `always` (the Dockerfile, .dockerignore) is sent even when a pattern excludes it.
    A `folders` list receives the folders Docker sends as entries of their own (an
    empty one, a folder's mode): those no pattern excludes; an excluded folder that
    is entered for a `!` pattern is not one of them."""
    patterns = read_patterns(context_dir)
    for name in always:
        name = _clean(name)
        if patterns and is_excluded(name, patterns):
            patterns.append(Pattern(name, True))
    kept = []
    for folder, dirs, names in os.walk(context_dir):
        rel_folder = os.path.relpath(folder, context_dir)
        rel_folder = "" if rel_folder == "." else rel_folder + "/"
        entered = []
        for name in sorted(dirs):
            relpath = rel_folder + name
            if os.path.islink(os.path.join(folder, name)):
                if not (patterns and is_excluded(relpath, patterns)):
                    kept.append(relpath)
            elif not (patterns and is_excluded(relpath, patterns)):
                entered.append(name)
                if folders is not None:
                    folders.append(relpath)
            elif _may_reinclude(relpath, patterns):
                entered.append(name)
        dirs[:] = entered
        for name in names:
            relpath = rel_folder + name
            if not (patterns and is_excluded(relpath, patterns)):
                kept.append(relpath)
    return sorted(kept)
