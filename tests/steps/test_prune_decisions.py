"""What prune selects from the fake engine's images and containers (Survey.decide), in
main's version of prune: dangling heads, older_than and labels as filters, keep_last,
and what it never selects (an image a workflow names, a running container's image).
tests/steps/test_prune.py proves the removals against the real engine."""
import time

import pytest

from tasks.errors import StepFailed
from tasks.labels import PROJECT_LABEL
from tasks.steps import prune
from tests.support.fake_engine import FAKE_HOST, fake_engine, flow  # noqa: F401 (fixtures)

DAY = 86400


def survey(flow, fake_engine, monkeypatch, policy=""):
    """The report of a dry run of a prune step with `policy`, in a project whose
    workflow builds lab/app:3."""
    flow.write("app/Dockerfile", "FROM scratch\n")
    all_steps = flow.loaded = flow.steps("""
        steps:
          build_app: {kind: build, context: ../app, image: "lab/app:3"}
          prune: {kind: prune, %s}
        """ % policy)
    return prune.Survey(all_steps["prune"], fake_engine).decide().report(dry_run=True)


def chosen(report):
    return [image["id"] for image in report["images"]]


def spared(report):
    return {image["id"]: image["reason"] for image in report["spared"]}


def test_dangling_heads_go_with_their_untagged_parents_and_tagged_images_stay(flow, fake_engine, monkeypatch):
    parent = fake_engine.add_image([], layers=["base"])
    dangling = fake_engine.add_image([], layers=["base", "old build"], parent=parent)
    fake_engine.add_image(["lab/tool:1"], layers=["tool"])
    report = survey(flow, fake_engine, monkeypatch)
    assert chosen(report) == [dangling]
    assert report["intermediate"] == [parent]


def test_a_workflow_output_is_never_chosen(flow, fake_engine, monkeypatch):
    named = fake_engine.add_image(["lab/app:3"], layers=["app 3"])
    unused = fake_engine.add_image(["lab/tool:1"], layers=["tool"])
    report = survey(flow, fake_engine, monkeypatch, "unused: true")
    assert chosen(report) == [unused]
    assert spared(report) == {named: "a workflow names it as an output (docker.io/lab/app:3)"}


def test_a_running_container_image_is_never_chosen(flow, fake_engine, monkeypatch):
    in_use = fake_engine.add_image([], layers=["in use"])
    fake_engine.add_container(in_use, name="web")
    report = survey(flow, fake_engine, monkeypatch)
    assert chosen(report) == []
    assert spared(report) == {in_use: "running container web uses it"}


def test_older_than_leaves_young_images_alone(flow, fake_engine, monkeypatch):
    old = fake_engine.add_image([], layers=["old"], created=int(time.time()) - 10 * DAY)
    fake_engine.add_image([], layers=["young"], created=int(time.time()))
    report = survey(flow, fake_engine, monkeypatch, "older_than: 7d")
    assert chosen(report) == [old]
    assert report["filtered"] == 1


def test_labels_and_not_labels_narrow_the_choice(flow, fake_engine, monkeypatch):
    ci = fake_engine.add_image([], layers=["ci"], labels={"stage": "ci"})
    fake_engine.add_image([], layers=["ci kept"], labels={"stage": "ci", "pinned": "yes"})
    fake_engine.add_image([], layers=["dev"], labels={"stage": "dev"})
    report = survey(flow, fake_engine, monkeypatch, "labels: [stage=ci], not_labels: [pinned]")
    assert chosen(report) == [ci]
    assert report["filtered"] == 2


def test_keep_last_removes_the_older_tags_of_a_built_repository(flow, fake_engine, monkeypatch):
    fake_engine.add_image(["lab/app:1"], layers=["app 1"], created=1000)
    fake_engine.add_image(["lab/app:2"], layers=["app 2"], created=2000)
    fake_engine.add_image(["lab/app:3"], layers=["app 3"], created=3000)
    fake_engine.add_image(["lab/tool:1"], layers=["tool"], created=500)  # no workflow builds lab/tool
    report = survey(flow, fake_engine, monkeypatch, "keep_last: 2")
    assert report["tags"] == ["lab/app:1"]


def test_the_keep_label_protects_an_image(flow, fake_engine, monkeypatch):
    kept = fake_engine.add_image([], layers=["kept"], labels={prune.KEEP_LABEL: ""})
    report = survey(flow, fake_engine, monkeypatch)
    assert spared(report) == {kept: "it has the keep label io.dockflow.keep"}


def test_a_dry_run_removes_nothing(flow, fake_engine, monkeypatch, capsys):
    fake_engine.add_image([], layers=["old build"])
    survey(flow, fake_engine, monkeypatch, "dry_run: true")
    step = flow.loaded["prune"]
    values = prune.run(step, prune.check(step, {}))
    assert values["dry_run"] and values["removed"] == 1
    assert "would remove image" in capsys.readouterr().out
    assert not [verb for verb in fake_engine.verbs() if verb.startswith("remove")]


def staying(report):
    return [item["text"] for item in report["staying"]]


def test_the_build_cache_counts_only_when_asked(flow, fake_engine, monkeypatch):
    fake_engine.build_cache = [{"ID": "a", "Size": 4096, "InUse": False}, {"ID": "b", "Size": 1, "InUse": True}]
    assert survey(flow, fake_engine, monkeypatch)["build_cache_bytes"] == 0
    assert survey(flow, fake_engine, monkeypatch, "build_cache: true")["build_cache_bytes"] == 4096


def test_an_image_exactly_older_than_the_age_is_old_enough(flow, fake_engine, monkeypatch):
    monkeypatch.setattr(prune.time, "time", lambda: 1_700_000_000.0)
    at_the_limit = fake_engine.add_image([], layers=["at the limit"], created=1_700_000_000 - 7 * DAY)
    fake_engine.add_image([], layers=["a second younger"], created=1_700_000_000 - 7 * DAY + 1)
    report = survey(flow, fake_engine, monkeypatch, "older_than: 7d")
    assert chosen(report) == [at_the_limit]
    assert staying(report) == ["1 dangling image is younger than 7d and stays"]


def test_stopped_containers_of_this_project_go_by_age(flow, fake_engine, monkeypatch):
    image_id = fake_engine.add_image(["lab/tool:1"], layers=["tool"])
    ours = {PROJECT_LABEL: flow.root}
    old = fake_engine.add_container(image_id, name="old", state="exited", labels=ours,
                                    created=int(time.time()) - 10 * DAY)
    fake_engine.add_container(image_id, name="young", state="exited", labels=ours, created=int(time.time()))
    fake_engine.add_container(image_id, name="theirs", state="exited", created=int(time.time()) - 10 * DAY)
    report = survey(flow, fake_engine, monkeypatch, "containers: true, older_than: 7d")
    assert report["containers"] == [{"id": old, "name": "old"}]
    assert staying(report) == ["1 stopped container is younger than 7d and stays"]
    fake_engine.add_container(image_id, name="younger", state="created", labels=ours, created=int(time.time()))
    report = survey(flow, fake_engine, monkeypatch, "containers: true, older_than: 7d")
    assert staying(report) == ["2 stopped containers are younger than 7d and stay"]


def test_a_single_image_a_filter_leaves_is_told_in_the_singular(flow, fake_engine, monkeypatch):
    fake_engine.add_image([], layers=["pinned"], labels={"pinned": "yes"})
    report = survey(flow, fake_engine, monkeypatch, "not_labels: [pinned]")
    assert staying(report) == ["1 dangling image has the label pinned and stays"]


def test_images_outside_the_project_lineage_stay_with_scope_project(flow, fake_engine, monkeypatch):
    fake_engine.add_image([], layers=["someone else's build"])
    fake_engine.add_image([], layers=["another one"])
    report = survey(flow, fake_engine, monkeypatch, "scope: project")
    assert chosen(report) == []
    assert staying(report) == ["2 dangling images are not of this project's lineage (scope: project) and stay"]


def test_keep_last_leaves_an_old_tag_younger_than_older_than(flow, fake_engine, monkeypatch):
    now = int(time.time())
    fake_engine.add_image(["lab/app:3"], layers=["app 3"], created=now)
    fake_engine.add_image(["lab/app:2"], layers=["app 2"], created=now - 3600)
    fake_engine.add_image(["lab/app:1"], layers=["app 1"], created=now - 10 * DAY)
    report = survey(flow, fake_engine, monkeypatch, "keep_last: 1, older_than: 7d")
    assert report["tags"] == ["lab/app:1"]
    assert staying(report) == ["1 old tag is younger than 7d and stays"]


def test_keep_last_spares_an_old_tag_whose_image_is_protected(flow, fake_engine, monkeypatch):
    fake_engine.add_image(["lab/app:3"], layers=["app 3"], created=3000)
    kept = fake_engine.add_image(["lab/app:2"], layers=["app 2"], created=2000, labels={prune.KEEP_LABEL: ""})
    report = survey(flow, fake_engine, monkeypatch, "keep_last: 1")
    assert report["tags"] == []
    assert spared(report) == {kept: "it has the keep label io.dockflow.keep"}


def test_a_listing_the_engine_refuses_names_the_step_the_engine_and_the_listing(flow, fake_engine, monkeypatch):
    def refused(what, **options):
        raise fake_engine.failure(what, "connection reset by peer")

    monkeypatch.setattr(fake_engine, "images", refused)
    with pytest.raises(StepFailed, match=r"^prune: prune on %s: list the images: connection reset by peer$"
                                         % FAKE_HOST):
        survey(flow, fake_engine, monkeypatch)


def test_a_workflow_whose_images_are_unknown_stops_a_tag_prune(flow, fake_engine, monkeypatch):
    """An image name that needs an unset environment variable: which images the workflows
    still use cannot be told, so no tagged image may go."""
    monkeypatch.delenv("DFTEST_UNSET_TAG", raising=False)
    flow.write("app/Dockerfile", "FROM scratch\n")
    all_steps = flow.steps("""
        vars:
          tag: {env: DFTEST_UNSET_TAG}
        steps:
          build_app: {kind: build, context: ../app, image: "lab/app:${tag}"}
          build_tool: {kind: build, context: ../app, image: "lab/tool:${tag}"}
          prune: {kind: prune, unused: true}
        """)
    with pytest.raises(StepFailed) as failure:
        prune.Survey(all_steps["prune"], fake_engine).decide()
    assert str(failure.value).startswith("prune: cannot tell which images build_app (")
    assert "), build_tool (" in str(failure.value)
    assert str(failure.value).endswith(") make(s) or read(s); prune removes no tagged image, and no scope: project "
                                       "image, while a workflow's images are unknown")


def test_freed_bytes_are_exact_when_an_image_ends_at_every_freed_layer(flow, fake_engine, monkeypatch):
    fake_engine.add_image(["lab/tool:1"], layers=["tool"])
    fake_engine.add_image([], layers=["old build"], size=700)
    report = survey(flow, fake_engine, monkeypatch)
    assert (report["image_bytes"], report["exact"]) == (700, True)


def test_a_freed_layer_whose_size_no_image_tells_makes_the_bytes_inexact(flow, fake_engine, monkeypatch):
    """No image ends at the shared layer: the old build's own layer's size is unknown."""
    fake_engine.add_image(["lab/tool:1"], layers=["shared", "tool"])
    fake_engine.add_image([], layers=["shared", "old build"], size=700)
    report = survey(flow, fake_engine, monkeypatch)
    assert report["exact"] is False
