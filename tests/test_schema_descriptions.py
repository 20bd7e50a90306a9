"""Editors show the schema's descriptions while a user types a workflow file."""
import json
import os

from tests.conftest import REPO

SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/workflow.schema.json"


def undocumented(node, path=()):
    """Paths of fields (properties entries, $defs entries) that have no description."""
    found = []
    if isinstance(node, dict):
        for group in ("properties", "$defs"):
            for name, sub in (node.get(group) or {}).items():
                if isinstance(sub, dict) and not sub.get("description"):
                    found.append("/".join(path + (group, name)))
        for key, value in node.items():
            if key == "if":  # a condition on `kind`, not a field a user writes
                continue
            found.extend(undocumented(value, path + (key,)))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(undocumented(item, path + (str(index),)))
    return found


def test_every_field_of_the_schema_has_a_description():
    with open(os.path.join(REPO, "schemas", "workflow.schema.json"), encoding="utf-8") as handle:
        schema = json.load(handle)
    assert schema.get("description")
    assert undocumented(schema) == []


def test_the_walk_finds_a_missing_description():
    assert undocumented({"properties": {"a": {"type": "string"}, "b": {"description": "x"}}}) == ["properties/a"]
    assert undocumented({"$defs": {"d": {"properties": {"c": {}}}}}) == ["$defs/d", "$defs/d/properties/c"]


def test_every_workflow_file_points_editors_at_the_schema():
    folder = os.path.join(REPO, "workflows")
    names = [n for n in sorted(os.listdir(folder)) if n.endswith((".yaml", ".yml"))]
    assert names
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            assert handle.readline().rstrip("\n") == SCHEMA_LINE, name
