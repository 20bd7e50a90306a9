"""The fake engine of the decision tests (tests/support/fake_engine.py) keeps to the real
Engine: the same verbs with the same parameters (fast), and answers of the same shape
as the real engine's (marked engine: it asks the real one)."""
import inspect
import os
import uuid

import pytest

from tasks import engine, steps
from tests.support.fake_engine import FakeEngine

STEPS_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "steps")


def test_every_step_kind_has_fast_tests_of_its_decisions():
    """`pytest -m "not engine"` covers every kind: tests/steps/test_<kind>_decisions.py."""
    missing = [kind for kind in steps.STEP_KINDS
               if not os.path.isfile(os.path.join(STEPS_TESTS, "test_%s_decisions.py" % kind))]
    assert not missing, "no tests/steps/test_<kind>_decisions.py for: %s" % ", ".join(missing)


def public_members(cls):
    return {name: member for name, member in vars(cls).items() if not name.startswith("_")}


def test_the_fake_stands_behind_every_verb_of_the_engine_with_its_parameters():
    fake = public_members(FakeEngine)
    for name, member in public_members(engine.Engine).items():
        assert name in fake, "FakeEngine lacks Engine.%s" % name
        if callable(member):
            assert parameters(fake[name], len(parameters(member))) == parameters(member), \
                "FakeEngine.%s takes other parameters than Engine.%s" % (name, name)


def parameters(function, count=None):
    """The named parameters of `function` (its first `count`); a verb's **options pass
    the SDK's keywords on, which the fake names one by one."""
    named = [parameter.name for parameter in inspect.signature(function).parameters.values()
             if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    return named if count is None else named[:count]


def keys(value, *path):
    for key in path:
        value = value[key]
    return set(value)


@pytest.mark.engine
def test_the_fake_answers_in_the_shapes_the_real_engine_gives(docker_host, busybox_image):
    real, fake = engine.Engine(docker_host), FakeEngine()
    fake_id = fake.add_image(["lab/app:1"], labels={"a": "b"})
    container = real.create_container("shape test", busybox_image, command=["true"], name="t" + uuid.uuid4().hex[:10])
    try:
        fake_container = fake.create_container("shape test", fake_id, command=["true"], name="shape")
        real_image, fake_image = real.inspect_image(busybox_image), fake.inspect_image(fake_id)
        assert keys(fake_image) <= keys(real_image)
        assert keys(fake_image, "RootFS") <= keys(real_image, "RootFS")
        assert keys(fake_image, "Config") <= keys(real_image, "Config")
        assert type(fake_image["Created"]) is type(real_image["Created"])
        (real_listed,) = [i for i in real.images("list", all=True) if i["Id"] == real_image["Id"]]
        (fake_listed,) = fake.images("list", all=True)
        assert keys(fake_listed) <= keys(real_listed)
        assert type(fake_listed["Created"]) is type(real_listed["Created"])
        assert keys(fake.inspect_container(fake_container)) <= keys(real.inspect_container(container))
        assert keys(fake.inspect_container(fake_container), "State") <= keys(real.inspect_container(container), "State")
        (real_row,) = real.containers("list", all=True, filters={"id": container})
        (fake_row,) = fake.containers("list", all=True)
        assert keys(fake_row) <= keys(real_row)
    finally:
        real.remove_container("shape test", container)
        real.close()
