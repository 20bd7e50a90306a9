"""load to several engines at once (docker_hosts), against fake engines: each target gets
only the layers it lacks, only the targets that lack the image get anything, and one
that cannot be reached is named while the others are loaded. tests/test_manyhosts.py
proves it on real hosts over ssh://."""
import re

import pytest

from tasks.errors import StepFailed
from tasks.steps import load as load_kind
from tests.steps.test_load_decisions import write_tar
from tests.support.fake_engine import FAKE_HOST, fake_engine, flow, install, out_of_date  # noqa: F401 (fixtures)

HOST_B = "tcp://127.0.0.1:1"  # faked below, or left to the real Engine: nothing listens there


def fan_out(flow):
    return flow.steps("""
        steps:
          load_app:
            kind: load
            tar: ../out/app.tar
            docker_hosts: ["%s", "%s"]
            parallel: 2
        """ % (FAKE_HOST, HOST_B))["load_app"]


def test_each_target_gets_only_the_layers_it_lacks(flow, fake_engine, monkeypatch):
    other = install(monkeypatch, HOST_B)
    write_tar(flow)
    fake_engine.add_image(["lab/base:1"], layers=["base"])
    step = fan_out(flow)
    shipped = load_kind.run(step, out_of_date(load_kind, step))["shipped"]
    assert shipped[FAKE_HOST] < shipped[HOST_B]
    assert load_kind.check(step, {}).current
    assert [target.verbs().count("load") for target in (fake_engine, other)] == [1, 1]


def test_only_the_targets_that_lack_the_image_get_it(flow, fake_engine, monkeypatch):
    other = install(monkeypatch, HOST_B)
    write_tar(flow)
    other.add_image(["lab/app:1"], layers=["base", "app"])
    verdict = out_of_date(load_kind, fan_out(flow))
    assert verdict.reason == "loading out/app.tar into %s: it has no lab/app:1" % FAKE_HOST
    load_kind.run(fan_out(flow), verdict)
    assert "load" not in other.verbs()


def test_a_target_that_cannot_be_reached_is_named_and_the_other_is_loaded(flow, fake_engine):
    write_tar(flow)
    step = fan_out(flow)
    verdict = out_of_date(load_kind, step)
    # Each target that will get the tar, with why, on one line: for the other, the Engine's whole error.
    expected = re.escape("loading out/app.tar into %s: it has no lab/app:1; %s: not asked: cannot reach the Docker "
                         "engine at %s (" % (FAKE_HOST, HOST_B, HOST_B)) + r"[^\n]* to use another engine"
    assert re.fullmatch(expected, verdict.reason), verdict.reason
    with pytest.raises(StepFailed) as failure:
        load_kind.run(step, verdict)
    lines = str(failure.value).splitlines()
    assert lines[0] == "load_app: 1 of 2 targets failed (the others are done; a rerun retries only these):"
    assert lines[1].startswith("    %s: cannot reach the Docker engine at %s" % (HOST_B, HOST_B))
    assert fake_engine.image_id("lab/app:1") is not None
