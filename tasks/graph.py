"""Dependency order of steps, and the cycle spelled out when there is one.

Both walks are iterative: a chain of thousands of steps must not hit Python's
recursion limit (a RecursionError would reach the user as a traceback)."""


class CycleError(Exception):
    def __init__(self, cycle):
        self.cycle = cycle
        super().__init__(" -> ".join(cycle))


def find_cycle(deps):
    """A list like [a, b, a] if `deps` (name -> names it needs) has a cycle, else None."""
    state = {}  # name -> "visiting" | "done"
    for start in sorted(deps):
        if start in state:
            continue
        state[start] = "visiting"
        trail, stack = [start], [iter(deps.get(start, ()))]
        while stack:
            for dep in stack[-1]:
                if state.get(dep) == "visiting":
                    return trail[trail.index(dep):] + [dep]
                if dep not in state:
                    state[dep] = "visiting"
                    trail.append(dep)
                    stack.append(iter(deps.get(dep, ())))
                    break
            else:
                state[trail.pop()] = "done"
                stack.pop()
    return None


def topological_order(deps):
    """Names with every dependency before its dependents; CycleError if impossible."""
    cycle = find_cycle(deps)
    if cycle:
        raise CycleError(cycle)
    order, seen = [], set()
    for start in sorted(deps):
        if start in seen:
            continue
        seen.add(start)
        trail, stack = [start], [iter(sorted(deps.get(start, ())))]
        while stack:
            for dep in stack[-1]:
                if dep not in seen:
                    seen.add(dep)
                    trail.append(dep)
                    stack.append(iter(sorted(deps.get(dep, ()))))
                    break
            else:
                order.append(trail.pop())
                stack.pop()
    return order
