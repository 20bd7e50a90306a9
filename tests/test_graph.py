"""tasks/graph.py: dependency order and cycles spelled out."""
import pytest

from tasks import graph


def test_no_cycle():
    assert graph.find_cycle({"app": ["base"], "base": [], "tag": ["app"]}) is None


@pytest.mark.parametrize("deps, cycle", [
    ({"a": ["a"]}, ["a", "a"]),
    ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
    ({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
    ({"a": ["b", "z"], "b": [], "z": ["y"], "y": ["z"]}, ["z", "y", "z"]),
])
def test_cycle_is_spelled_out(deps, cycle):
    assert graph.find_cycle(deps) == cycle
    with pytest.raises(graph.CycleError, match="^%s$" % " -> ".join(cycle)):
        graph.topological_order(deps)


def test_dependencies_come_first():
    deps = {"tag": ["app"], "app": ["base", "rootfs"], "base": ["rootfs"], "rootfs": [], "lone": []}
    order = graph.topological_order(deps)
    assert sorted(order) == sorted(deps)
    for name, needs in deps.items():
        assert all(order.index(n) < order.index(name) for n in needs)


def test_a_name_only_needed_is_visited():
    assert graph.find_cycle({"a": ["ghost"]}) is None


def test_a_long_chain():
    deps = {"s%d" % i: ["s%d" % (i + 1)] for i in range(3000)}
    deps["s3000"] = []
    assert graph.find_cycle(deps) is None
    deps["s3000"] = ["s0"]
    assert len(graph.find_cycle(deps)) == 3002
