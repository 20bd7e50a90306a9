"""Dependency order of steps, and the cycle spelled out when there is one."""


class CycleError(Exception):
    def __init__(self, cycle):
        self.cycle = cycle
        super().__init__(" -> ".join(cycle))


def find_cycle(deps):
    """A list like [a, b, a] if `deps` (name -> names it needs) has a cycle, else None."""
    state = {}  # name -> "visiting" | "done"

    def visit(name, trail):
        state[name] = "visiting"
        trail.append(name)
        for dep in deps.get(name, ()):
            if state.get(dep) == "visiting":
                return trail[trail.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, trail)
                if found:
                    return found
        trail.pop()
        state[name] = "done"
        return None

    for name in sorted(deps):
        if name not in state:
            found = visit(name, [])
            if found:
                return found
    return None


def topological_order(deps):
    """Names with every dependency before its dependents; CycleError if impossible."""
    cycle = find_cycle(deps)
    if cycle:
        raise CycleError(cycle)
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for dep in sorted(deps.get(name, ())):
            visit(dep)
        order.append(name)

    for name in sorted(deps):
        visit(name)
    return order
