"""schemas/workflow.schema.json agrees with the step registry, and every workflow
of this repository validates. Both are read at test time: kinds are added often."""
import glob
import json
import os

import jsonschema
import pytest
import yaml

from tasks import steps, workflow
from tests.conftest import REPO


def schema():
    with open(workflow.SCHEMA_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def test_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(schema())


def test_kind_enum_equals_the_registry():
    kinds = schema()["$defs"]["step"]["properties"]["kind"]["enum"]
    assert len(kinds) == len(set(kinds))
    assert sorted(kinds) == sorted(steps.STEP_KINDS)


def test_every_kind_has_its_defs_entry_and_if_then():
    document = schema()
    branches = {}
    for part in document["$defs"]["step"]["allOf"]:
        kind = part["if"]["properties"]["kind"]["const"]
        assert kind not in branches, "two if/then branches for %r" % kind
        branches[kind] = part["then"]["$ref"]
    for kind in steps.STEP_KINDS:
        assert branches.get(kind) == "#/$defs/%s" % kind, kind
        assert "description" in document["$defs"][kind], kind
    assert sorted(branches) == sorted(steps.STEP_KINDS)


def test_every_kind_has_a_module():
    for kind in steps.STEP_KINDS:
        module = steps.module_for(kind)
        for name in ("inputs", "outputs", "run"):
            assert callable(getattr(module, name, None)), (kind, name)
        assert callable(getattr(module, "check", None)) or getattr(module, "ALWAYS_RUN", False), kind


WORKFLOWS = sorted(glob.glob(os.path.join(REPO, "workflows", "*.y*ml")))


@pytest.mark.parametrize("path", WORKFLOWS, ids=os.path.basename)
def test_repository_workflows_validate(path, tmp_path):
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    # The loader's validator: a pattern does not judge a value holding ${variables}.
    errors = [e.message for e in workflow.validator_class()(schema()).iter_errors(document)]
    assert errors == []
    workflow.load_file(path, str(tmp_path))  # the static checks too


def test_there_are_workflows():
    assert any(p.endswith("lab.yaml") for p in WORKFLOWS)


def patterns_in(node):
    """Every `pattern` of the schema, with where it is."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from patterns_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns_in(value)


# A value each pattern takes whole. `${name}` is the registry port's variable form: a
# pattern never judges a value holding a variable (the step checks it once expanded).
SAMPLES = {
    "^[0-9]+[smhdw]$": "7d",
    "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$": "1.0.0",
    "^[A-Za-z_][A-Za-z0-9_.-]*$": "prune",
    "^[A-Za-z_][A-Za-z0-9_]*$": "version",
    "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$": "registry",
    "^[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$": "lab/basic-app",
}
# the schedule's pattern (if it keeps one: schedules may be checked by code alone)
SCHEDULE_PATTERNS = [p for p in set(patterns_in(schema())) if p.startswith("^(@(")]


def test_every_pattern_has_a_sample_here():
    found = set(patterns_in(schema()))
    assert {p for p in found if not p.startswith("^\\$\\{") and not p.startswith("^(@(")} == set(SAMPLES)
    assert all(p.startswith("^") and p.endswith("$") for p in found)


@pytest.mark.parametrize("pattern, value", sorted(SAMPLES.items()) + [(p, "30 3 * * *") for p in SCHEDULE_PATTERNS])
def test_a_pattern_takes_no_final_newline(pattern, value):
    """JSON Schema patterns are ECMA regexps, whose `$` is the end of the text; Python's
    `$` also matches before a final newline, and jsonschema uses Python's re.search: a
    step named "prune\\n" passed. What a pattern takes, it refuses with a newline after it."""
    check = workflow.validator_class()({"pattern": pattern})
    assert check.is_valid(value)
    assert not check.is_valid(value + "\n")
