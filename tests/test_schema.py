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
