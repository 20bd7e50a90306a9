"""Reading workflow files: every YAML and schema problem named by file, line,
column and path, all of them in one run; the parse cache; `doit list` on a bad file."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tasks import workflow
from tasks.errors import WorkflowError
from tests.conftest import REPO


@pytest.fixture
def flows(tmp_path, monkeypatch):
    """Write workflows/NAME and load it; messages name `workflows/NAME` (cwd = tmp_path)."""
    monkeypatch.chdir(tmp_path)

    class Flows:
        cache_dir = str(tmp_path / ".dockflow" / "cache")

        def write(self, text, name="x.yaml"):
            path = tmp_path / "workflows" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(textwrap.dedent(text))
            return str(path)

        def load(self, text, name="x.yaml"):
            return workflow.load_file(self.write(text, name), self.cache_dir)

        def problems(self, text, name="x.yaml"):
            with pytest.raises(WorkflowError) as caught:
                self.load(text, name)
            return caught.value.problems

    return Flows()


def test_a_good_file_loads(flows):
    flow = flows.load("""
        vars:
          user: ann
        steps:
          tag:
            kind: tag
            doc: tag it
            source: app
            tags: ["${user}/app:1.0.0"]
        """)
    step = flow.steps["tag"]
    assert step.kind == "tag" and step.doc == "tag it"
    assert step.get("tags") == ["ann/app:1.0.0"]
    assert step.where("tags") == "workflows/x.yaml:9:5: steps.tag.tags"
    assert step.where("tags", 0) == "workflows/x.yaml:9:12: steps.tag.tags.0"



def test_where_a_value_is_missing_points_at_its_closest_parent(flows):
    """A message about a field the step does not have (a default, a missing key) points
    at the step, or at the document when nothing on the path is known."""
    flow = flows.load("""
        steps:
          tag:
            kind: tag
            source: app
            tags: [a]
        """)
    assert flow.steps["tag"].where("platform") == "workflows/x.yaml:3:3: steps.tag.platform"
    assert flow.steps["tag"].where("tags", 5, "deeper") == "workflows/x.yaml:6:5: steps.tag.tags.5.deeper"
    assert flow.where("nothing", "here") == "workflows/x.yaml:2:1"  # the document (after its blank line)


def test_wrong_type_names_file_line_column_and_path(flows):
    problems = flows.problems("""
        steps:
          build_app:
            kind: build
            image: app
            context: [a, b]
        """)
    assert problems == ["workflows/x.yaml:6:5: steps.build_app.context: ['a', 'b'] is not of type 'string'"]


def kind_enum():
    with open(workflow.SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)["$defs"]["step"]["properties"]["kind"]["enum"]


def test_every_error_in_one_run(flows):
    problems = flows.problems("""
        steps:
          build_app:
            kind: build
            image: app
            context: 3
            bogus: 1
            imgae: x
          tag:
            kind: tag
            source: app
            tags: ["${nope}"]
            force: "yes"
          list:
            kind: tag
            source: app
            tags: [b]
          other:
            kind: teleport
        """)
    assert sorted(problems) == sorted([
        "workflows/x.yaml:6:5: steps.build_app.context: 3 is not of type 'string'",
        "workflows/x.yaml:7:5: steps.build_app.bogus: unknown field",
        "workflows/x.yaml:8:5: steps.build_app.imgae: unknown field (did you mean 'image'?)",
        "workflows/x.yaml:13:5: steps.tag.force: 'yes' is not of type 'boolean'",
        "workflows/x.yaml:12:5: steps.tag.tags: undefined variable ${nope} (declare it under vars:)",
        "workflows/x.yaml:14:3: steps.list: step name 'list' is a doit command; `doit list` would not "
        "run it: rename the step",
        "workflows/x.yaml:19:5: steps.other.kind: 'teleport' is not a step kind; the kinds: %s"
        % ", ".join(kind_enum()),
    ])


def test_a_misspelt_kind_is_its_step_s_one_problem_in_the_file_s_order(flows):
    """Which fields a step may have depends on its kind: none is called unknown before
    the kind is right."""
    problems = flows.problems("""
        steps:
          tag: {kind: tag, source: app, tagz: [b]}
          build_base:
            kind: biuld
            context: base
            image: basic-base
          no_kind: {context: base, image: "app:${nope}"}
        """)
    assert problems == [
        "workflows/x.yaml:3:3: steps.tag: 'tags' is a required property",
        "workflows/x.yaml:3:33: steps.tag.tagz: unknown field (did you mean 'tags'?)",
        "workflows/x.yaml:5:5: steps.build_base.kind: 'biuld' is not a step kind (did you mean 'build'?); "
        "the kinds: %s" % ", ".join(kind_enum()),
        "workflows/x.yaml:8:3: steps.no_kind: 'kind' is a required property",
        "workflows/x.yaml:8:28: steps.no_kind.image: undefined variable ${nope} (declare it under vars:)",
    ]


def test_unknown_top_level_field_and_missing_steps(flows):
    problems = flows.problems("stepz:\n  a: {kind: tag}\n")
    assert "workflows/x.yaml:1:1: (top): 'steps' is a required property" in problems
    assert "workflows/x.yaml:1:1: stepz: unknown field (did you mean 'steps'?)" in problems


def test_missing_required_field(flows):
    assert flows.problems("steps:\n  t: {kind: tag, source: a}\n") == [
        "workflows/x.yaml:2:3: steps.t: 'tags' is a required property"]


def test_duplicate_keys_are_reported_where_the_second_one_is(flows):
    problems = flows.problems("""
        steps:
          a:
            kind: tag
            source: x
            source: y
            tags: [z]
          a:
            kind: tag
        """)
    assert problems == [
        "workflows/x.yaml:6:5: steps.a: duplicate key 'source'",
        "workflows/x.yaml:8:3: steps: duplicate key 'a'",
    ]


def test_yaml_syntax_error_names_the_place(flows):
    problems = flows.problems("steps:\n  a: {kind: tag\n  b: 1\n")
    assert len(problems) == 1
    assert problems[0].startswith("workflows/x.yaml:3:")
    assert ": YAML: " in problems[0]


@pytest.mark.parametrize("text, message", [
    ("", "workflows/x.yaml:1:1: the file is empty; a workflow needs `steps:`"),
    ("- a\n- b\n", "workflows/x.yaml:1:1: (top): ['a', 'b'] is not of type 'object'"),
])
def test_files_that_are_no_workflow(flows, text, message):
    assert flows.problems(text) == [message]


def test_bad_bytes(flows, tmp_path):
    path = tmp_path / "workflows" / "x.yaml"
    path.parent.mkdir()
    path.write_bytes(b"steps:\n  a: \xff\n")
    with pytest.raises(WorkflowError, match=r"workflows/x.yaml:2:6: not UTF-8 text \(byte 12\)"):
        workflow.load_file(str(path), flows.cache_dir)


def test_step_name_that_doit_would_read_as_an_option_or_glob(flows):
    problems = flows.problems("steps:\n  '-x': {kind: tag, source: a, tags: [b]}\n  'a*': {kind: tag, source: a, tags: [b]}\n")
    assert len(problems) == 2 and all("does not match" in p for p in problems), problems


def test_variable_using_a_variable(flows):
    problems = flows.problems("vars:\n  a: x\n  b: '${a}'\nsteps:\n  t: {kind: tag, source: '${b}', tags: [c]}\n")
    assert problems == ["workflows/x.yaml:3:3: vars.b: a variable cannot use other variables"]


def test_errors_of_every_file_in_one_run(flows, tmp_path):
    flows.write("steps:\n  a: {kind: tag, source: x}\n", "one.yaml")
    flows.write("steps:\n  b: {kind: build, image: y}\n", "two.yaml")
    flows.write("steps:\n  c: {kind: tag, source: x, tags: [z]}\n", "three.yml")
    with pytest.raises(WorkflowError) as caught:
        workflow.load_all(str(tmp_path / "workflows"), flows.cache_dir)
    assert caught.value.problems == [
        "workflows/one.yaml:2:3: steps.a: 'tags' is a required property",
        "workflows/two.yaml:2:3: steps.b: 'context' is a required property",
    ]
    assert str(caught.value).startswith("workflow definition has 2 errors:\n  workflows/one.yaml:2:3")


# --- the parse cache ---------------------------------------------------------
PROBE = """
import json, sys
from tasks import workflow
flow = workflow.load_file(sys.argv[1], sys.argv[2])
print(json.dumps({"tags": flow.steps["t"].get("tags"), "where": flow.steps["t"].where("tags"),
                  "modules": sorted(m for m in ("yaml", "jsonschema") if m in sys.modules)}))
"""


def probe(flows, path):
    done = subprocess.run([sys.executable, "-c", PROBE, path, flows.cache_dir], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_second_load_uses_the_cache_and_a_change_invalidates_it(flows):
    path = flows.write("steps:\n  t: {kind: tag, source: a, tags: [b]}\n")
    first = probe(flows, path)
    assert first["modules"] == ["jsonschema", "yaml"]
    assert len(os.listdir(flows.cache_dir)) == 1
    second = probe(flows, path)
    assert second == dict(first, modules=[])  # same answer, neither parser imported
    flows.write("# moved down a line\nsteps:\n  t: {kind: tag, source: a, tags: [c]}\n")
    third = probe(flows, path)
    assert third == {"tags": ["c"], "where": "workflows/x.yaml:3:29: steps.t.tags",
                     "modules": ["jsonschema", "yaml"]}
    assert len(os.listdir(flows.cache_dir)) == 1  # the new entry replaced the old one


def test_a_broken_cache_entry_is_parsed_again(flows):
    path = flows.write("steps:\n  t: {kind: tag, source: a, tags: [b]}\n")
    flows.load("steps:\n  t: {kind: tag, source: a, tags: [b]}\n")
    (entry,) = os.listdir(flows.cache_dir)
    with open(os.path.join(flows.cache_dir, entry), "w") as handle:
        handle.write("{not json")
    assert probe(flows, path)["tags"] == ["b"]


def test_a_bad_file_is_not_cached(flows):
    flows.problems("steps:\n  t: {kind: tag}\n")
    assert not os.path.isdir(flows.cache_dir) or os.listdir(flows.cache_dir) == []


# --- through doit ------------------------------------------------------------
def test_doit_list_on_a_bad_workflow(offline_project):
    offline_project.workflow("""
        steps:
          build_app:
            kind: build
            image: app
            context: 3
            bogus: 1
        """)
    offline_project.workflow("steps:\n  a:\n    kind: tag\n    source: x\n    tags: [y]\n    source: z\n",
                             name="more.yaml")
    done = offline_project.doit("list")
    assert done.returncode == 3, done.output
    assert "workflow definition has 3 errors:" in done.output
    assert "workflows/flow.yaml:6:5: steps.build_app.context: 3 is not of type 'string'" in done.output
    assert "workflows/flow.yaml:7:5: steps.build_app.bogus: unknown field" in done.output
    assert "workflows/more.yaml:6:5: steps.a: duplicate key 'source'" in done.output
    assert "Traceback" not in done.output


def test_a_pattern_does_not_judge_a_value_holding_variables(tmp_path):
    """`name: ${registry_name}` is checked once expanded, not as the literal text."""
    from tasks import workflow

    document = {"vars": {"n": "reg"}, "steps": {"r": {"kind": "registry", "name": "${n}"}}}
    checked = workflow.validator_class()(json.loads(workflow._read_schema()))
    assert [e.message for e in checked.iter_errors(document)] == []
    document["steps"]["r"]["name"] = "-bad name"
    assert "pattern" in [e.validator for e in checked.iter_errors(document)]


def test_a_step_named_after_any_doit_command_is_refused():
    """doit's own commands, and the ones this project adds, hide a step of that name."""
    import tomllib

    from doit.doit_cmd import DoitMain

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        ours = set(tomllib.load(handle)["tool"]["doit"]["plugins"]["command"])
    assert {command.get_name() for command in DoitMain.DOIT_CMDS} | ours <= workflow.DOIT_COMMANDS


def test_yaml_syntax_error_says_where_and_what(flows):
    assert flows.problems("steps:\n  a: {kind: tag\n  b: 1\n") == [
        "workflows/x.yaml:3:4: YAML: did not find expected ',' or '}'"]
    assert flows.problems("steps:\n\tb: 1\n") == [
        "workflows/x.yaml:2:1: YAML: found character that cannot start any token"]


def test_a_duplicate_top_level_key_is_named_at_the_top(flows):
    problems = flows.problems("steps: {}\nsteps: {}\n")
    assert problems == ["workflows/x.yaml:2:1: (top): duplicate key 'steps'"]


def test_collected_problems_leave_the_workflow_loaded(flows):
    """With `collect`, a problem that leaves the file sound is kept for the one report."""
    collect = []
    flow = workflow.load_file(flows.write("""
        steps:
          tag: {kind: tag, source: "${nowhere}", tags: [a]}
        """), flows.cache_dir, collect=collect)
    assert set(flow.steps) == {"tag"}
    assert collect == ["workflows/x.yaml:3:20: steps.tag.source: undefined variable ${nowhere} "
                       "(declare it under vars:)"]


def test_a_missing_workflow_folder_is_one_clear_problem(tmp_path):
    with pytest.raises(WorkflowError) as caught:
        workflow.load_all(str(tmp_path / "workflows"), str(tmp_path / "cache"))
    assert caught.value.problems == ["%s: no such folder; put workflow files in workflows/" % (tmp_path / "workflows")]


def test_a_path_field_is_absolute_from_the_workflow_folder(flows, tmp_path):
    flow = flows.load("""
        vars:
          where: app
        steps:
          build: {kind: build, context: "../${where}", image: x, doc: builds x}
        """)
    step = flow.steps["build"]
    assert step.path("context") == str(tmp_path / "app")
    assert step.path("dockerfile") is None
    assert step.path("dockerfile", "../app/Dockerfile.dev") == str(tmp_path / "app" / "Dockerfile.dev")
    # what a digest reads: the definition with variables expanded and without its doc
    assert step.expanded_definition() == {"kind": "build", "context": "../app", "image": "x"}


# --- messages, limits and what a refused step leaves -----------------------------------
def test_bytes_that_are_not_utf8_are_one_whole_message(flows, tmp_path):
    path = tmp_path / "workflows" / "x.yaml"
    path.parent.mkdir()
    path.write_bytes(b"steps:\n  a: \xff\n")
    with pytest.raises(WorkflowError) as caught:
        workflow.load_file(str(path), flows.cache_dir)
    assert caught.value.problems == ["workflows/x.yaml:2:6: not UTF-8 text (byte 12)"]


def test_a_pattern_is_named_as_the_schema_writes_it(flows):
    """The schema's `$` is checked as the end of the text, but the message quotes the
    pattern as written, not as checked."""
    assert flows.problems("steps:\n  '-x': {kind: tag, source: a, tags: [b]}\n") == [
        "workflows/x.yaml:2:3: steps.-x: '-x' does not match '^[A-Za-z_][A-Za-z0-9_.-]*$'"]


def test_a_decimal_key_is_named_as_a_number(flows):
    assert flows.problems("steps:\n  b: {kind: build, image: a, context: ., args: {1.5: x}}\n") == [
        'workflows/x.yaml:2:49: steps.b.args: YAML reads the key 1.5 as a number, not text: quote it ("1.5")']


def build_with_aliases(count):
    """A build step whose args repeat one aliased value `count` times."""
    return ("vars:\n  s: &s v\nsteps:\n  b: {kind: build, image: app, context: ., args: {%s}}\n"
            % ", ".join("a%d: *s" % n for n in range(count)))


def test_aliases_may_repeat_ten_thousand_values_and_no_more(flows):
    assert set(flows.load(build_with_aliases(10000)).steps) == {"b"}
    (problem,) = flows.problems(build_with_aliases(10001))
    assert problem.endswith(": YAML: aliases here repeat more than 10000 values in all (at *s): write the values out")


def test_a_value_of_half_the_message_room_is_quoted_whole(flows):
    """Up to 150 characters a value is said in full; longer ones are cut (test_hostile)."""
    value = ["x" * 146]  # repr: 150 characters
    (problem,) = flows.problems("steps:\n  t: {kind: tag, source: a, tags: [b], doc: %s}\n" % json.dumps(value))
    assert problem == "workflows/x.yaml:2:40: steps.t.doc: %r is not of type 'string'" % value


def test_collected_problems_of_a_refused_step_leave_the_other_steps_loaded(flows):
    """A step the schema refuses is left out and its problem kept for the one report;
    the file's other steps still load."""
    collect = []
    flow = workflow.load_file(flows.write("""
        steps:
          good: {kind: tag, source: a, tags: [b]}
          bad: {kind: tag, source: a, tags: 3}
        """), flows.cache_dir, collect=collect)
    assert set(flow.steps) == {"good"}
    assert collect == ["workflows/x.yaml:4:31: steps.bad.tags: 3 is not of type 'array'"]


def test_a_key_left_empty_is_named_as_null(flows):
    """`? ` with nothing after it is a null key, shown as `~` as if written so."""
    assert flows.problems("steps:\n  ? \n  : {kind: tag, source: a, tags: [b]}\n") == [
        'workflows/x.yaml:2:4: steps: YAML reads the key ~ as null (no value), not text: quote it ("~")']
