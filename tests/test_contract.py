"""Every step kind holds to the contract in tasks/steps/contract.py: each member is
there, callables take the contract's parameters, and the constants have its types.
No engine: the kinds' modules are only imported."""
import inspect

import pytest

from tasks import steps
from tasks.steps import contract

CALLABLES = {name: inspect.signature(getattr(contract.StepKind, name)) for name in
             ("outputs", "inputs", "problems", "check", "run", "exclusive")}


@pytest.mark.parametrize("kind", sorted(steps.STEP_KINDS))
def test_every_kind_has_every_member_of_the_contract(kind):
    module = steps.module_for(kind)
    assert isinstance(module, contract.StepKind), [
        name for name in list(CALLABLES) + ["ALWAYS_RUN", "COMMAND_LINE_SWITCHES"] if not hasattr(module, name)]


@pytest.mark.parametrize("kind", sorted(steps.STEP_KINDS))
def test_every_member_has_the_contracts_shape(kind):
    module = steps.module_for(kind)
    for name, wanted in CALLABLES.items():
        parameters = list(wanted.parameters)[1:]  # the protocol's self is the module
        assert list(inspect.signature(getattr(module, name)).parameters) == parameters, (kind, name)
    assert isinstance(module.ALWAYS_RUN, bool)
    assert isinstance(module.COMMAND_LINE_SWITCHES, tuple)
    assert all(isinstance(switch, str) for switch in module.COMMAND_LINE_SWITCHES)


def test_a_module_missing_a_member_is_no_step_kind():
    class Half:
        ALWAYS_RUN = False
        COMMAND_LINE_SWITCHES = ()

        def outputs(self, step):
            return []

    assert not isinstance(Half(), contract.StepKind)
