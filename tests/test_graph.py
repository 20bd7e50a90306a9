"""tasks/graph.py: dependency order and cycles spelled out."""
import pytest

from tasks import graph


def test_no_cycle():
    assert graph.find_cycle({"app": ["base"], "base": [], "tag": ["app"]}) is None


@pytest.mark.parametrize("deps, cycle", [
    ({"a": ["a"]}, ["a", "a"]),
    ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
    ({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
    ({"a": ["b", "z"], "b": [], "z": ["y"], "y": ["z"]}, ["y", "z", "y"]),
    ({"m": ["k"], "k": ["q"], "q": ["m"]}, ["k", "q", "m", "k"]),
])
def test_cycle_is_spelled_out(deps, cycle):
    """In the direction of `needs`, from its first name in sorted order (the step the
    message points at), whatever order the steps were read in."""
    assert graph.find_cycle(deps) == cycle
    assert graph.find_cycle(dict(reversed(deps.items()))) == cycle
    with pytest.raises(graph.CycleError, match="^%s$" % " -> ".join(cycle)) as raised:
        graph.topological_order(deps)
    assert raised.value.cycle == cycle


def test_dependencies_come_first():
    deps = {"tag": ["app"], "app": ["base", "rootfs"], "base": ["rootfs"], "rootfs": [], "lone": []}
    order = graph.topological_order(deps)
    assert sorted(order) == sorted(deps)
    for name, needs in deps.items():
        assert all(order.index(n) < order.index(name) for n in needs)


def test_a_name_only_needed_is_visited():
    assert graph.find_cycle({"a": ["ghost"]}) is None
    assert graph.topological_order({"a": ["ghost"]}) == ["ghost", "a"]


def test_what_a_dependency_needs_comes_before_it_too():
    """A dependency that has dependencies of its own: d before c before a."""
    order = graph.topological_order({"a": ["b", "c"], "c": ["d"]})
    assert sorted(order) == ["a", "b", "c", "d"]
    assert order.index("d") < order.index("c") < order.index("a")
    assert order.index("b") < order.index("a")


def test_the_order_is_the_same_whatever_order_the_steps_were_read_in():
    deps = {"tag": ["app"], "app": ["rootfs", "base"], "base": ["rootfs"], "rootfs": [], "lone": [], "z": ["lone"]}
    order = graph.topological_order(deps)
    assert graph.topological_order(dict(reversed(deps.items()))) == order
    assert graph.topological_order({name: list(reversed(needs)) for name, needs in deps.items()}) == order


def test_a_long_chain():
    deps = {"s%d" % i: ["s%d" % (i + 1)] for i in range(3000)}
    deps["s3000"] = []
    assert graph.find_cycle(deps) is None
    deps["s3000"] = ["s0"]
    assert len(graph.find_cycle(deps)) == 3002
