"""dockflow: the life of Docker images declared in YAML, run by doit.

Kept empty of imports on purpose: `doit build_app` imports this package on every
run, and the no-op path must stay cheap (see bench/).
"""
__version__ = "0.1.0"
