"""tasks/doit_internals.py: each use of doit beyond its documented API still works on
the doit installed. A doit upgrade that changes one fails here, not in a user's run."""
import doit.doit_cmd
import doit.exceptions

from tasks import doit_internals


def test_doits_command_names_are_read_from_doit():
    names = doit_internals.command_names()
    assert {"run", "list", "info", "clean", "help", "forget", "ignore", "dumpdb", "strace", "tabcompletion",
            "reset-dep"} <= names
    assert doit_internals.OUR_COMMANDS <= names
    assert all(isinstance(name, str) and name for name in names)


def test_the_command_line_vars_are_where_doit_keeps_them(monkeypatch):
    monkeypatch.setattr(doit.doit_cmd, "_CMDLINE_VARS", None)
    assert doit_internals.command_line_vars() == {}
    # as doit's own parser leaves them: DoitMain.run -> set_var for each name=value
    doit.doit_cmd.reset_vars()
    doit.doit_cmd.get_var  # noqa: B018 (doit's documented reader of the same store)
    assert isinstance(doit.doit_cmd._CMDLINE_VARS, dict)
    doit.doit_cmd._CMDLINE_VARS["version"] = "2.0.0"
    assert doit.get_var("version") == "2.0.0"  # the store get_var reads is the one we read whole
    assert doit_internals.command_line_vars() == {"version": "2.0.0"}


def test_an_invalid_command_gets_the_hint_on_its_first_line(monkeypatch):
    monkeypatch.setattr(doit.exceptions.InvalidCommand, "__str__", doit.exceptions.InvalidCommand.__str__)
    doit_internals.extend_invalid_command_text(lambda name: " (did you mean 'build_app'?)" if name == "biuld_app" else "")
    error = doit.exceptions.InvalidCommand(not_found="biuld_app")
    first_line = str(error).split("\n")[0]
    assert "biuld_app" in first_line and first_line.endswith("(did you mean 'build_app'?)")
    assert str(doit.exceptions.InvalidCommand(not_found="zzz")) == str(error).replace(
        "biuld_app", "zzz").replace(" (did you mean 'build_app'?)", "")
    doit_internals.extend_invalid_command_text(lambda name: "")  # extending again replaces, never stacks
    assert "did you mean" not in str(error)
