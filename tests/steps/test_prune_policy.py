"""prune's decisions against a fake engine that stands behind the verbs prune uses
(images, containers, inspect, remove_image, prune_builds, df): which images and tags
a policy chooses, what stays and why, and what a failing part leaves of the record.
tests/steps/test_prune.py proves the same rules against the real engine."""
import hashlib
import json
import textwrap

import pytest

from tasks import doit_tasks, imagetar, refs, ui
from tasks.errors import StepFailed, WorkflowError
from tasks.steps import Verdict, prune

NOW = 1_700_000_000
DAY = 86400


def layer(name):
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class FakeApi:
    """The engine's answers, from a list of images {id, tags, created, layers, labels, size},
    behind the Engine's verbs (tasks/engine.py): errors as StepFailed, not-found as None."""

    def __init__(self, images, build_cache_error=None):
        self.images_by_id = {image["Id"]: image for image in images}
        self.build_cache_error = build_cache_error
        self.removed = []

    def images(self, what, all=False):
        return [dict(image) for image in self.images_by_id.values()]

    def containers(self, what, all=False, size=False, filters=None):
        return []

    def remove_image(self, what, ref, force=False):
        image = self.images_by_id.get(ref) or next((i for i in self.images_by_id.values() if ref in i["RepoTags"]),
                                                   None)
        if image is None:
            return None
        self.removed.append(ref)
        if ref in image["RepoTags"] and len(image["RepoTags"]) > 1:
            image["RepoTags"].remove(ref)
            return [{"Untagged": ref}]
        del self.images_by_id[image["Id"]]
        kept = {c for other in self.images_by_id.values() for c in imagetar.chain_ids(other["Layers"])}
        return [{"Deleted": image["Id"]}] + [{"Deleted": c} for c in imagetar.chain_ids(image["Layers"])
                                             if c not in kept]

    def prune_build_cache(self, what, filters=None):
        if self.build_cache_error:
            raise StepFailed("%s: %s" % (what, self.build_cache_error))
        return 0

    def disk_usage(self, what):
        return {"BuildCache": []}


class FakeEngine:
    host = "fake://engine"

    def __init__(self, images, **api_options):
        self.api = FakeApi(images, **api_options)

    def _find(self, ref):
        for image in self.api.images_by_id.values():
            if ref == image["Id"] or refs.normalize(ref) in map(refs.normalize, image["RepoTags"]):
                return image
        return None

    def image_id(self, ref):
        image = self._find(ref)
        return image["Id"] if image else None

    def inspect_image(self, ref):
        image = self._find(ref)
        return {"Id": image["Id"], "RootFS": {"Layers": image["Layers"]}} if image else None

    def forget(self, ref=None):
        pass

    def __getattr__(self, verb):  # the work verbs: the fake api's
        return getattr(self.api, verb)


def image(name, tags=(), created=NOW - 10 * DAY, layers=("base",), labels=None, size=1000):
    return {"Id": layer("image " + name), "RepoTags": list(tags), "RepoDigests": [], "Created": created,
            "Size": size, "Labels": labels or {}, "ParentId": "", "Layers": [layer(x) for x in layers]}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project whose workflow builds lab/app (on lab/base) and has one prune step;
    `load(policy, **command_line)` gives that prune step."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows" / "app").mkdir(parents=True)
    (tmp_path / "workflows" / "app" / "Dockerfile").write_text("FROM lab/base:1\n")

    def load(policy, **command_line):
        spec = dict({"kind": "prune"}, **policy)
        (tmp_path / "workflows" / "flow.yaml").write_text(textwrap.dedent("""
            steps:
              build_app: {kind: build, context: app, image: lab/app}
              prune: %s
            """) % json.dumps(spec))
        list(doit_tasks.task_dicts(str(tmp_path), override=command_line.get, given=command_line))
        return doit_tasks.loaded_project().steps["prune"]
    return load


def decide(step, images):
    return prune.Survey(step, FakeEngine(images)).decide().report(dry_run=True)


def run(step, fake, monkeypatch):
    """prune.run against `fake`; (the JSON record it wrote, the StepFailed or None)."""
    records = []
    monkeypatch.setattr(prune.engine, "for_step", lambda step: fake)
    monkeypatch.setattr(ui, "record", records.append)
    try:
        prune.run(step, Verdict(False))
        failure = None
    except StepFailed as err:
        failure = err
    assert len(records) == 1
    return records[0], failure


BASE = image("base", ["lab/base:1"])
APP = image("app", ["lab/app:latest"], layers=("base", "app"))


def test_keep_last_never_removes_a_version_tag(project):
    """The lab's case: keep_last: 3 removed 1.0.0 and 1.0.1 and kept the git-commit tags."""
    images = [BASE, APP]
    for number, tag in enumerate(["1.0.0", "1.0.1", "abc1234", "def5678", "0a1b2c3", "v2.0.0"]):
        images.append(image(tag, ["lab/app:" + tag], created=NOW - (20 - number) * DAY,
                            layers=("base", "app " + tag)))
    report = decide(project({"keep_last": 1, "dangling": False}), images)
    assert sorted(report["tags"]) == ["lab/app:0a1b2c3", "lab/app:abc1234", "lab/app:def5678"]  # :latest newest


def test_keep_versions_sorts_by_version_not_by_age(project):
    versions = ["1.10.0", "1.9.0", "1.2.0", "2.0.0-rc.1", "2.0.0-rc.10", "2.0.0-rc.2", "v1.11.0"]
    images = [BASE, APP] + [image(v, ["lab/app:" + v], created=NOW - index * DAY, layers=("base", v))
                            for index, v in enumerate(versions)]
    report = decide(project({"keep_versions": 3, "dangling": False}), images)
    # kept: 2.0.0-rc.10 > 2.0.0-rc.2 > 2.0.0-rc.1; the newest-made (1.10.0) goes
    assert sorted(report["tags"]) == ["lab/app:1.10.0", "lab/app:1.2.0", "lab/app:1.9.0", "lab/app:v1.11.0"]
    assert decide(project({"dangling": False}), images)["tags"] == [], "the default removes no version tag"


def test_unused_spares_an_image_with_a_version_tag(project):
    images = [BASE, APP, image("rel", ["lab/rel:1.0.0", "lab/rel:x"], layers=("base", "rel")),
              image("tmp", ["lab/tmp:x"], layers=("base", "tmp"))]
    report = decide(project({"unused": True, "dangling": False}), images)
    assert [i["tags"] for i in report["images"]] == [["lab/tmp:x"]]  # lab/app: an output; lab/base:1 its FROM
    assert {tuple(i["tags"]): i["reason"] for i in report["spared"]}[("lab/rel:1.0.0", "lab/rel:x")] == \
        "it has the version tag lab/rel:1.0.0 (only keep_versions removes version tags)"


def test_unused_spares_the_base_image_a_build_reads(project):
    """No step makes lab/base:1, but build_app's Dockerfile says FROM it: removed, the next
    build would fail (with no registry to pull it back from, for good)."""
    report = decide(project({"unused": True, "dangling": False}), [BASE, APP])
    assert report["images"] == []
    assert {tuple(i["tags"]): i["reason"] for i in report["spared"]}[("lab/base:1",)] == \
        "a workflow builds on it (lab/base:1: a FROM or cache_from)"


def test_what_the_filters_leave_is_said_plainly(project):
    young = [image("young%d" % n, created=NOW, layers=("base", "y%d" % n)) for n in range(14)]
    old = image("old", layers=("base", "old"))
    unlabelled = image("nolabel", layers=("base", "nl"))
    for item in young + [old]:
        item["Labels"] = {"team": "a"}
    prune.time.time, real_time = (lambda: NOW + 60), prune.time.time
    try:
        report = decide(project({"older_than": "24h", "labels": ["team=a"]}), [BASE, APP, old, unlabelled] + young)
    finally:
        prune.time.time = real_time
    assert [i["id"] for i in report["images"]] == [old["Id"]]
    assert sorted(item["text"] for item in report["staying"]) == [
        "1 dangling image lacks the label team=a and stays",
        "14 dangling images are younger than 24h and stay"]
    assert report["filtered"] == 15


def test_project_scope_keeps_to_the_project_lineage(project):
    ours = image("ours", layers=("base", "old app"))           # a rebuild of lab/app left it: on lab/base
    theirs = image("theirs", layers=("elsewhere", "x"))         # another project's, on another base
    images = [BASE, APP, ours, theirs]
    engine_wide = decide(project({}), images)
    assert {i["id"] for i in engine_wide["images"]} == {ours["Id"], theirs["Id"]}
    assert engine_wide["engine_wide"] == ["dangling"]
    scoped = decide(project({"scope": "project"}), images)
    assert [i["id"] for i in scoped["images"]] == [ours["Id"]]
    assert scoped["engine_wide"] == []
    assert [item["text"] for item in scoped["staying"]] == [
        "1 dangling image is not of this project's lineage (scope: project) and stays"]


def test_listed_bytes_count_shared_layers_again_freed_bytes_once(project):
    a = image("a", layers=("base", "shared", "a"), size=300)
    b = image("b", layers=("base", "shared", "b"), size=300)
    shared = image("sharedtop", ["lab/keep:1"], layers=("base", "shared"), size=250)
    base = dict(BASE, Size=200)
    app = dict(APP, Size=210)
    report = decide(project({}), [base, app, shared, a, b])
    assert report["listed_bytes"] == 600
    assert report["image_bytes"] == 100  # 50 + 50: their own top layers only


def test_policy_fields_from_the_command_line(project):
    step = project({"keep_last": 5}, older_than="0s", keep_last="1", dry_run="true", unused="no",
                   labels="a=1,b")
    policy = prune.Policy(step)
    assert (policy.older_than, policy.keep_last, policy.unused, policy.labels) == \
        ("0s", 1, False, [("a", "1"), ("b", None)])
    assert prune.is_dry_run(step)


def test_a_bad_command_line_policy_value_is_a_definition_error(project):
    with pytest.raises(WorkflowError) as caught:
        project({}, older_than="7x", keep_last="-1", scope="mine", dangling="maybe")
    assert caught.value.problems == [
        "workflows/flow.yaml:4:3: steps.prune: command line dangling=maybe: 'maybe' is not of type 'boolean' "
        "(%s)" % prune._field_schema("dangling")["description"],
        "workflows/flow.yaml:4:3: steps.prune: command line older_than=7x: '7x' does not match "
        "'^[0-9]+[smhdw]$' (%s)" % prune._field_schema("older_than")["description"],
        "workflows/flow.yaml:4:3: steps.prune: command line keep_last=-1: -1 is less than the minimum of 0 "
        "(%s)" % prune._field_schema("keep_last")["description"],
        "workflows/flow.yaml:4:3: steps.prune: command line scope=mine: 'mine' is not one of ['engine', 'project'] "
        "(%s)" % prune._field_schema("scope")["description"]]


def test_build_cache_age_goes_to_the_engine_as_go_seconds(project, monkeypatch):
    asked = []
    fake = FakeEngine([BASE, APP])
    fake.api.prune_build_cache = lambda what, filters=None: asked.append(filters) or 5
    record, failure = run(project({"build_cache": True, "older_than": "7d"}), fake, monkeypatch)
    assert failure is None
    assert asked == [{"until": "604800s"}]
    assert record["build_cache_bytes"] == 5


def test_a_failing_part_keeps_the_record_of_the_others(project, monkeypatch):
    gone = image("gone", layers=("base", "gone"))
    fake = FakeEngine([BASE, APP, gone], build_cache_error="build cache prune refused")
    record, failure = run(project({"build_cache": True}), fake, monkeypatch)
    assert [i["id"] for i in record["images"]] == [gone["Id"]], "the images removed before are on record"
    assert gone["Id"] not in fake.api.images_by_id
    assert record["failures"] == ["build cache: build cache prune refused"]
    assert "build cache: build cache prune refused (what the other parts removed is in the record above)" \
        in str(failure)
