"""Every use of doit that is not its documented API, in one place.

doit is pinned below 0.38 in pyproject.toml; tests/test_doit_internals.py fails when
doit changes under any of these, so an upgrade says what to mend here instead of
breaking a run silently. The rest of dockflow speaks to doit through its documented
parts only: task dicts, DOIT_CONFIG, uptodate callables, Python actions, commands.
"""
from __future__ import annotations

from collections.abc import Callable

import doit.doit_cmd
import doit.exceptions

# The commands dockflow adds ([tool.doit.plugins.command] in pyproject.toml).
OUR_COMMANDS = frozenset({"validate", "plan", "graph", "layers"})


def command_names() -> frozenset[str]:
    """The names doit takes for commands: a step of such a name would be hidden by it
    (`doit list` never runs a step called list). doit's own, from DoitMain.DOIT_CMDS."""
    return frozenset(command.get_name() for command in doit.doit_cmd.DoitMain.DOIT_CMDS) | OUR_COMMANDS


def command_line_vars() -> dict[str, str]:
    """Every `name=value` doit parsed from the command line. doit offers get_var(name)
    only; the whole set lives in doit.doit_cmd._CMDLINE_VARS (None before parsing)."""
    return dict(getattr(doit.doit_cmd, "_CMDLINE_VARS", None) or {})


def extend_invalid_command_text(hint: Callable[[str], str]) -> None:
    """doit raises and prints InvalidCommand itself (`doit biuld_app`): its first line
    gets `hint(the name not found)` appended, e.g. a did-you-mean."""
    original = doit.exceptions.InvalidCommand.__str__
    if getattr(original, "dockflow_extended", False):
        original = original.original

    def text(error: doit.exceptions.InvalidCommand) -> str:
        plain = original(error)
        if not error.not_found:
            return plain
        extra = hint(str(error.not_found))
        first, _, rest = plain.partition("\n")
        return "%s%s\n%s" % (first, extra, rest) if extra else plain

    text.dockflow_extended = True  # type: ignore[attr-defined]
    text.original = original  # type: ignore[attr-defined]
    doit.exceptions.InvalidCommand.__str__ = text
