"""mypy over tasks/ ([tool.mypy] in pyproject.toml): the step-kind contract, the
engine's verbs, Project, Step and Verdict carry types, and the code that calls them
is checked against them."""
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_finds_no_type_error_in_tasks(tmp_path):
    if shutil.which("mypy") is None and subprocess.run([sys.executable, "-m", "mypy", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.skip("mypy is not installed (python3 -m tasks.bootstrap --tests installs the test extras)")
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
