"""What prune selects from the fake engine's images and containers (Survey.decide), in
main's version of prune: dangling heads, older_than and labels as filters, keep_last,
and what it never selects (an image a workflow names, a running container's image).
tests/steps/test_prune.py proves the removals against the real engine."""
import time


from tasks.steps import prune
from tests.support.fake_engine import fake_engine, flow  # noqa: F401 (fixtures)

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
