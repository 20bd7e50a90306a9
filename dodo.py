"""doit's entry point: each step of workflows/*.yaml is a task (`doit list`)."""
from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401
