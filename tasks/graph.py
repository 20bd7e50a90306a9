"""Dependency order of steps, and the cycle spelled out when there is one.

The standard library's graphlib does the work; its walks are iterative, so a chain of
thousands of steps does not hit Python's recursion limit. What is ours: the cycle
spelled in the direction of `needs` (`a -> b -> a`: a needs b), from its first name in
sorted order, so that the message names the same step on every run."""
import graphlib


class CycleError(graphlib.CycleError):
    """graphlib's error (args: message, cycle), with the cycle spelled our way."""

    def __init__(self, cycle):
        self.cycle = cycle
        super().__init__(" -> ".join(cycle), cycle)

    def __str__(self):
        return self.args[0]


def _sorter(deps):
    """A TopologicalSorter of `deps` (name -> names it needs), fed in sorted order:
    graphlib keeps insertion order, so its answers are the same on every run."""
    return graphlib.TopologicalSorter({name: sorted(deps[name]) for name in sorted(deps)})


def find_cycle(deps):
    """A list like [a, b, a] if `deps` (name -> names it needs) has a cycle, else None."""
    try:
        _sorter(deps).prepare()
    except graphlib.CycleError as err:
        return _spelled(err.args[1])
    return None


def _spelled(found):
    """graphlib's cycle walks from a name to the names that need it: turn it round, and
    start it at its first name in sorted order."""
    ring = found[-1:0:-1]  # [a, c, b, a] (c needs a) -> [a, b, c]
    start = ring.index(min(ring))
    ring = ring[start:] + ring[:start]
    return ring + ring[:1]


def topological_order(deps):
    """Names with every dependency before its dependents; CycleError if impossible."""
    try:
        return list(_sorter(deps).static_order())
    except graphlib.CycleError as err:
        raise CycleError(_spelled(err.args[1])) from None
