"""Workflow variables: sources, the semver check, `$$`, overrides, git without git."""
import os
import subprocess

import pytest

from tasks import variables
from tasks.errors import StepFailed


def make(declared, base_dir=".", override=None):
    return variables.Variables(declared, str(base_dir), override)


def test_literal_sources():
    found = make({"a": "plain", "n": 3, "yes": True, "b": {"value": "long"}, "f": {"value": False}})
    assert [found.get(n) for n in ("a", "n", "yes", "b", "f")] == ["plain", "3", "true", "long", "false"]


def test_file_source_is_stripped_and_relative_to_the_workflow(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "VERSION").write_text("1.2.3\n")
    assert make({"v": {"file": "app/VERSION", "semver": True}}, tmp_path).get("v") == "1.2.3"


@pytest.mark.parametrize("text", ["1.0.0", "0.10.2-rc.1", "1.0.0+build.5", "10.20.30-alpha-1+x"])
def test_semver_accepted(tmp_path, text):
    (tmp_path / "VERSION").write_text(text)
    assert make({"v": {"file": "VERSION", "semver": True}}, tmp_path).get("v") == text


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "one", ""])
def test_semver_refused_clearly(tmp_path, text):
    (tmp_path / "VERSION").write_text(text + "\n")
    with pytest.raises(StepFailed) as caught:
        make({"v": {"file": "VERSION", "semver": True}}, tmp_path).get("v")
    assert str(caught.value) == "variable ${v}: %s holds %r, not a semantic version like 1.0.0" % (
        os.path.relpath(tmp_path / "VERSION"), text)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(StepFailed, match=r"variable \$\{v\}: cannot read .*/NOPE: No such file"):
        make({"v": {"file": "NOPE"}}, tmp_path).get("v")


def test_env_source(monkeypatch):
    monkeypatch.setenv("DOCKFLOW_TEST_USER", "ann")
    monkeypatch.delenv("DOCKFLOW_TEST_UNSET", raising=False)
    found = make({"u": {"env": "DOCKFLOW_TEST_USER"}, "d": {"env": "DOCKFLOW_TEST_UNSET", "default": "lab"},
                  "x": {"env": "DOCKFLOW_TEST_UNSET"}})
    assert found.get("u") == "ann" and found.get("d") == "lab"
    with pytest.raises(StepFailed, match="environment variable DOCKFLOW_TEST_UNSET is not set and no default"):
        found.get("x")


def test_expand_everywhere_and_dollar_dollar_escape():
    found = make({"user": "ann", "v": "1.0.0"})
    assert found.expand("${user}/app:${v}") == "ann/app:1.0.0"
    assert found.expand("$${user} costs $$5 and $HOME stays") == "${user} costs $5 and $HOME stays"
    assert found.expand({"a": ["${v}", 3, {"b": "${user}"}]}) == {"a": ["1.0.0", 3, {"b": "ann"}]}
    assert variables.names_in("$${user} ${v} $${x}") == ["v"]
    assert variables.names_in_value({"k": ["${a}", {"z": "${b}"}], "n": 1}) == ["a", "b"]


def test_undefined_name():
    with pytest.raises(StepFailed, match=r"variable \$\{nope\} is not declared under vars:"):
        make({}).expand("${nope}")


def test_command_line_override_wins_and_is_checked(tmp_path):
    (tmp_path / "VERSION").write_text("1.0.0")
    given = {"v": "2.0.0", "user": "bob"}
    found = make({"v": {"file": "VERSION", "semver": True}, "user": {"env": "NOT_SET_ANYWHERE_42"}},
                 tmp_path, given.get)
    assert found.expand("${user}:${v}") == "bob:2.0.0"
    bad = make({"v": {"file": "VERSION", "semver": True}}, tmp_path, {"v": "2.0"}.get)
    with pytest.raises(StepFailed, match=r"\$\{v\}: the command line holds '2.0', not a semantic version"):
        bad.get("v")


def test_values_are_resolved_once(tmp_path):
    (tmp_path / "V").write_text("1")
    found = make({"v": {"file": "V"}}, tmp_path)
    assert found.get("v") == "1"
    (tmp_path / "V").write_text("2")
    assert found.get("v") == "1"


# --- git -----------------------------------------------------------------------
def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "f.txt").write_text("one\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "one")
    (tmp_path / "workflows" / "f.txt").write_text("two\n")
    git(tmp_path, "commit", "-q", "-am", "two")
    return tmp_path


def git_vars(repo):
    return make({"c": {"git": "commit"}, "full": {"git": "commit_full"}, "b": {"git": "branch"},
                 "d": {"git": "dirty"}}, repo / "workflows")


def test_git_commit_from_files_equals_rev_parse(repo):
    head = git(repo, "rev-parse", "HEAD")
    assert variables._head_commit_from_files(str(repo / "workflows")) == head
    found = git_vars(repo)
    assert (found.get("full"), found.get("c"), found.get("b"), found.get("d")) == (head, head[:7], "main", "false")


def test_git_commit_from_packed_refs(repo):
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert variables._head_commit_from_files(str(repo)) == head


def test_git_detached_head(repo):
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", first)
    assert variables._head_commit_from_files(str(repo)) == first
    assert git_vars(repo).get("full") == first


def test_git_dirty(repo):
    (repo / "workflows" / "f.txt").write_text("three\n")
    assert git_vars(repo).get("d") == "true"


def test_git_worktree_is_answered_by_git(repo, tmp_path_factory):
    other = tmp_path_factory.mktemp("wt") / "wt"
    git(repo, "worktree", "add", "-q", "-b", "side", str(other), "HEAD~1")
    assert variables._head_commit_from_files(str(other)) is None  # .git is a file there
    assert make({"c": {"git": "commit_full"}}, other).get("c") == git(repo, "rev-parse", "HEAD~1")


def test_no_repository_is_a_clear_error(tmp_path):
    with pytest.raises(StepFailed, match=r"variable \$\{c\}: git rev-parse HEAD failed in .*: fatal: not a git repository"):
        make({"c": {"git": "commit"}}, tmp_path).get("c")


def test_repository_without_commits(tmp_path):
    git(tmp_path, "init", "-q")
    with pytest.raises(StepFailed, match=r"variable \$\{c\}: git rev-parse HEAD failed"):
        make({"c": {"git": "commit"}}, tmp_path).get("c")


@pytest.mark.parametrize("value", ["1.0.0\n", "1.1\u0661.0"])
def test_semver_from_the_command_line_is_matched_whole(value):
    """`$` matched before a final newline, and `\\d` any script's digits."""
    found = make({"v": {"file": "VERSION", "semver": True}}, override={"v": value}.get)
    with pytest.raises(StepFailed, match="not a semantic version"):
        found.get("v")


def test_a_file_that_is_not_utf8_is_one_clear_failure(tmp_path):
    (tmp_path / "VERSION").write_bytes(b"1.0.0-caf\xe9\n")
    with pytest.raises(StepFailed) as caught:
        make({"v": {"file": "VERSION"}}, tmp_path).get("v")
    assert str(caught.value) == "variable ${v}: %s is not UTF-8 text (byte 9)" % os.path.relpath(tmp_path / "VERSION")


# --- messages name the declaration -------------------------------------------------
def test_a_message_names_where_the_variable_is_declared(monkeypatch):
    """With the workflow's `where`, a failure names `file:line:col: vars.NAME`, and the
    whole message is the one a user reads."""
    monkeypatch.delenv("DOCKFLOW_TEST_UNSET", raising=False)
    found = variables.Variables({"x": {"env": "DOCKFLOW_TEST_UNSET"}}, ".",
                                where=lambda name: "workflows/app.yaml:4:3")
    with pytest.raises(StepFailed) as caught:
        found.get("x")
    assert str(caught.value) == ("workflows/app.yaml:4:3: vars.x: environment variable DOCKFLOW_TEST_UNSET "
                                 "is not set and no default is given")


def test_a_declaration_without_a_source_is_one_clear_failure():
    """The schema refuses such a declaration; the class alone must not hand back None
    (it would become `None` in an image name)."""
    with pytest.raises(StepFailed) as caught:
        make({"x": {"semver": True}}).get("x")
    assert str(caught.value) == "variable ${x} has no source"


def test_commit_is_read_without_the_git_program(repo, monkeypatch, tmp_path_factory):
    """commit and commit_full come from .git's files: a no-op run pays for no git
    process, and works where git is not installed (branch still asks git)."""
    head = git(repo, "rev-parse", "HEAD")
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("no-git")))
    found = git_vars(repo)
    assert (found.get("full"), found.get("c")) == (head, head[:7])
    with pytest.raises(StepFailed) as caught:
        found.get("b")
    assert str(caught.value) == "variable ${b}: git is not installed"


def test_a_failed_git_is_named_with_its_own_words(tmp_path):
    """The message is git's command, its folder and git's stderr, nothing after it."""
    said = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    assert said.returncode != 0
    with pytest.raises(StepFailed) as caught:
        make({"c": {"git": "commit"}}, tmp_path).get("c")
    assert str(caught.value) == "variable ${c}: git rev-parse HEAD failed in %s: %s" % (tmp_path, said.stderr.strip())
