"""bootstrap makes each clone its own .venv and installs there, never into the Python
that runs it (Debian's refuses that, PEP 668); the installed package finds its schema
inside itself."""
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tasks import bootstrap, workflow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(REPO, "schemas", "workflow.schema.json")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Run by an interpreter: every folder it installs into, and what each holds.
INSTALLED_PROBE = """
import json, os, site
folders = sorted(set(site.getsitepackages() + [site.getusersitepackages()]))
print(json.dumps({f: sorted(os.listdir(f)) if os.path.isdir(f) else None for f in folders}))
"""
# Run by the clone's venv Python from /: where tasks and its schema come from.
WHERE_PROBE = """
import json
from importlib import metadata
import tasks
from tasks import workflow
print(json.dumps({"tasks": tasks.__file__, "schema": workflow.SCHEMA_PATH,
                  "schema_bytes": len(workflow._read_schema()),
                  "commands": sorted(e.name for e in metadata.entry_points(group="doit.COMMAND"))}))
"""


def working_copy(target):
    """The repository's files as they are now (committed or not, less what git ignores)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    for relpath in filter(None, listed):
        source = os.path.join(REPO, relpath)
        if not os.path.lexists(source):
            continue  # deleted, not yet committed
        os.makedirs(os.path.dirname(os.path.join(target, relpath)), exist_ok=True)
        shutil.copy2(source, os.path.join(target, relpath), follow_symlinks=False)
    return str(target)


def run_json(argv, **kwargs):
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def system_env():
    """A new user's shell: the system folders on PATH, no Python of ours in the way."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return dict(env, PATH=SYSTEM_PATH, PYTHONDONTWRITEBYTECODE="1")


@pytest.mark.skipif(not os.path.exists(bootstrap.DEBIAN_PYTHON), reason="no Debian /usr/bin/python3 here")
def test_debians_python_makes_the_clone_its_own_venv(tmp_path):
    if not bootstrap.can_make_venv(bootstrap.DEBIAN_PYTHON):
        pytest.skip("/usr/bin/python3 cannot make a venv here (python3 -m tasks.bootstrap --tests "
                    "installs python3-venv)")
    clone = working_copy(tmp_path / "clone")
    env = system_env()
    global_before = run_json([bootstrap.DEBIAN_PYTHON, "-I", "-c", INSTALLED_PROBE])
    set_up = [bootstrap.DEBIAN_PYTHON, "-c", "from tasks import bootstrap; bootstrap.python_packages(False)"]

    first = subprocess.run(set_up, cwd=clone, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    venv_python = os.path.join(clone, ".venv", "bin", "python")
    where = run_json([venv_python, "-I", "-c", WHERE_PROBE], cwd="/", env=env)
    assert where["tasks"] == os.path.join(clone, "tasks", "__init__.py")
    assert where["schema"] == os.path.join(clone, "tasks", "workflow.schema.json")
    assert where["schema_bytes"] == os.path.getsize(SCHEMA)
    assert {"validate", "plan", "graph", "layers"} <= set(where["commands"])
    validate = subprocess.run([os.path.join(clone, ".venv", "bin", "doit"), "validate"], cwd=clone,
                              env=dict(env, DOCKER_HOST="unix:///nonexistent/docker.sock"),
                              capture_output=True, text=True)
    assert validate.returncode == 0 and "steps: OK" in validate.stdout, validate.stdout + validate.stderr
    # Nothing of ours in Debian's interpreter: no dockflow, no doit.COMMAND plugins there.
    assert run_json([bootstrap.DEBIAN_PYTHON, "-I", "-c", INSTALLED_PROBE]) == global_before

    again = subprocess.run(set_up, cwd=clone, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout == "bootstrap: python packages in .venv: all there\n"


def test_a_venv_made_for_another_folder_is_not_ready(tmp_path, monkeypatch):
    """A clone moved or copied keeps a .venv whose scripts name the old folder."""
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python")
    monkeypatch.setattr(bootstrap, "PROJECT", str(tmp_path))
    monkeypatch.setattr(bootstrap, "VENV_PYTHON", str(venv / "bin" / "python"))
    monkeypatch.setattr(bootstrap, "VENV_OWNER", str(venv / "dockflow-project"))
    assert not bootstrap.venv_ready()  # half made: no owner written yet
    (venv / "dockflow-project").write_text("/somewhere/else\n")
    assert not bootstrap.venv_ready()
    (venv / "dockflow-project").write_text(str(tmp_path) + "\n")
    assert bootstrap.venv_ready()
    os.unlink(venv / "bin" / "python")  # e.g. the pyenv version it was made from is gone
    assert not bootstrap.venv_ready()


def test_the_packaged_schema_is_the_repositorys_one_source():
    assert os.path.dirname(workflow.SCHEMA_PATH) == os.path.dirname(os.path.abspath(workflow.__file__))
    assert os.path.realpath(workflow.SCHEMA_PATH) == os.path.realpath(SCHEMA)


def test_a_wheel_holds_the_schema_inside_the_package(tmp_path):
    """Installed from a wheel (no repository beside it), tasks finds its schema; no
    top-level schemas/ folder lands in site-packages."""
    source = working_copy(tmp_path / "src")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                           str(tmp_path / "dist"), source], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").iterdir()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert not [name for name in names if name.startswith("schemas/")]
        archive.extractall(tmp_path / "site")
    where = run_json([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1])\n" + WHERE_PROBE,
                      str(tmp_path / "site")], cwd="/")
    assert where["schema"] == str(tmp_path / "site" / "tasks" / "workflow.schema.json")
    assert where["schema_bytes"] == os.path.getsize(SCHEMA)
