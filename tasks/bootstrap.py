"""Take a fresh machine to a working dockflow: `python3 -m tasks.bootstrap [--tests]`.

Installs what is missing and says what it did:
- on Debian as root, the Debian packages for what no command provides yet:
  Docker Engine (docker.io), busybox-static (the lab's offline base image),
  docker-registry (the lab's offline registry:2 image), python3.X-venv when this
  Python cannot make a virtual environment, and with --tests also openssh-server
  and rsync (the second host of the tests), cron and graphviz;
- this clone's own virtual environment, `.venv/` (git-ignored), with this package
  (editable, from this folder) and its Python dependencies in it, and with --tests
  pytest: nothing goes into the Python that runs this script (Debian's refuses it,
  PEP 668), so each clone has its own doit, its own `doit.COMMAND` plugins and its
  own code. Use it as `.venv/bin/doit`, or `. .venv/bin/activate` first;
- a running Docker engine, when none answers and this is not a --tests run (the
  test run starts and stops its own). It keeps running for the lab: stop it with
  `kill PID` (the pid is printed and kept in /run/dockflow-dockerd.pid).
Runs nothing twice: each part is skipped when already there.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
VENV = os.path.join(PROJECT, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
# The clone a .venv was made for: its scripts name their interpreter by absolute path,
# so a clone moved or copied elsewhere needs a new one.
VENV_OWNER = os.path.join(VENV, "dockflow-project")
PYTHON_MODULES = ("doit", "docker", "jsonschema", "yaml", "loguru", "rich")
# command or file that proves a package is there -> Debian package
# docker-registry: the lab's registry_image step packs its binary into registry:2 (offline).
DEBIAN_PACKAGES = {"dockerd": "docker.io", "/bin/busybox": "busybox-static", "docker-registry": "docker-registry"}
DEBIAN_TEST_PACKAGES = {"sshd": "openssh-server",
                        "rsync": "rsync", "ip": "iproute2", "nsenter": "util-linux",
                        "crontab": "cron", "dot": "graphviz"}
DEBIAN_PYTHON = "/usr/bin/python3"
DOCKERD_LOG = "/var/log/dockflow-dockerd.log"
DOCKERD_PID = "/run/dockflow-dockerd.pid"
# Run by the venv's Python, isolated (-I: no PYTHONPATH, no user site, not the current
# folder): what of argv[1:] it lacks, as a JSON list. "dockflow" is missing unless
# it is installed and its `tasks` is this clone's.
MISSING_PROBE = """
import json, os, sys
from importlib import metadata, util
project, modules = sys.argv[1], sys.argv[2:]
missing = [name for name in modules if util.find_spec(name) is None]
try:
    metadata.version("dockflow")
    tasks = util.find_spec("tasks")
    ours = tasks is not None and os.path.dirname(os.path.realpath(tasks.origin)) == os.path.realpath(os.path.join(project, "tasks"))
except metadata.PackageNotFoundError:
    ours = False
print(json.dumps(missing + ([] if ours else ["dockflow"])))
"""


def say(message):
    print("bootstrap: " + message, flush=True)


def run(command, **kwargs):
    say("$ " + " ".join(command))
    subprocess.run(command, check=True, **kwargs)


def venv_ready():
    """This clone's .venv exists, was made here, and its Python starts."""
    try:
        with open(VENV_OWNER) as handle:
            made_for = handle.read().strip()
    except OSError:
        return False
    if made_for != PROJECT:
        return False
    try:
        return subprocess.run([VENV_PYTHON, "-I", "-c", ""], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0
    except OSError:  # gone, or its base Python is (a pyenv version removed)
        return False


def can_make_venv(python=sys.executable):
    """Debian ships venv's ensurepip (and so pip in a new venv) apart, in python3.X-venv."""
    return subprocess.run([python, "-m", "ensurepip", "--version"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def venv_package():
    return "python3.%d-venv" % sys.version_info.minor


def venv_packages(with_tests):
    """The Debian packages that let a Debian Python make a venv, where one must and can't:
    this Python (base prefix /usr: Debian's own) for .venv, and with --tests Debian's
    /usr/bin/python3, which tests/test_bootstrap.py runs this with."""
    packages = set()
    if sys.base_prefix == "/usr" and not venv_ready() and not can_make_venv():
        packages.add(venv_package())
    if with_tests and os.path.exists(DEBIAN_PYTHON) and not can_make_venv(DEBIAN_PYTHON):
        packages.add("python3-venv")  # the venv package of Debian's default python3
    return packages


def make_venv():
    if venv_ready():
        return
    if not can_make_venv():
        say("%s cannot make a virtual environment (no ensurepip; Debian: apt-get install %s)"
            % (sys.executable, venv_package()))
        sys.exit(1)
    # --clear: what is there is half made, or was made for another folder.
    run([sys.executable, "-m", "venv", "--clear", VENV])
    with open(VENV_OWNER, "w") as handle:
        handle.write(PROJECT + "\n")


def python_packages(with_tests):
    """This package and its dependencies in this clone's .venv, never elsewhere."""
    make_venv()
    modules = PYTHON_MODULES + (("pytest", "pytest_timeout", "hypothesis", "mypy") if with_tests else ())
    probe = subprocess.run([VENV_PYTHON, "-I", "-c", MISSING_PROBE, PROJECT, *modules], cwd="/",
                           check=True, capture_output=True, text=True)
    missing = json.loads(probe.stdout)
    if not missing:
        say("python packages in .venv: all there")
        return
    target = ".[test]" if with_tests else "."
    # compat: a plain path entry. The default editable mode installs an import hook
    # that costs about 10 ms at every Python start, so at every `doit build_app`.
    run([VENV_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--config-settings", "editable_mode=compat", "-e", target], cwd=PROJECT)


def _present(probe):
    return os.path.exists(probe) if probe.startswith("/") else bool(shutil.which(probe))


def debian_packages(with_tests):
    wanted = dict(DEBIAN_PACKAGES, **(DEBIAN_TEST_PACKAGES if with_tests else {}))
    missing = {package for probe, package in wanted.items() if not _present(probe)}
    missing = sorted(missing | venv_packages(with_tests))
    if not missing:
        say("system packages: all there")
        return
    if not (os.geteuid() == 0 and shutil.which("apt-get")):
        say("missing system packages %s: install them (Debian: apt-get install -y %s)"
            % (", ".join(missing), " ".join(missing)))
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    try:
        run(["apt-get", "install", "-y", "-q", *missing], env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        # One package this release lacks must not keep the others out: say which.
        failed = []
        for package in missing:
            try:
                run(["apt-get", "install", "-y", "-q", package], env=env, stdout=subprocess.DEVNULL)
            except subprocess.CalledProcessError:
                failed.append(package)
        say("could not install %s (apt-cache policy %s tells why); what needs it will fail"
            % (", ".join(failed), " ".join(failed)))


def docker_engine_from_venv():
    """tasks.engine needs doit (its errors), which only the venv has."""
    done = subprocess.run([VENV_PYTHON, "-I", "-c", "from tasks import bootstrap; bootstrap.docker_engine()"])
    if done.returncode != 0:
        sys.exit(done.returncode)


def docker_engine():
    from tasks import dockerd_launch, engine

    host = engine.default_host()
    if engine.Engine(host).ping():
        say("Docker engine answers at " + host)
        return
    if not host.startswith("unix://") or os.geteuid() != 0 or not shutil.which("dockerd"):
        say("no Docker engine answers at %s: start one (dockerd) or set DOCKER_HOST" % host)
        sys.exit(1)
    try:
        process = dockerd_launch.start(["-H", host], DOCKERD_LOG, engine.Engine(host).ping)
    except RuntimeError as error:
        say(str(error))
        sys.exit(1)
    with open(DOCKERD_PID, "w") as handle:
        handle.write("%d\n" % process.pid)
    say("started dockerd (pid %d, log %s); it keeps running: stop it with `kill %d`"
        % (process.pid, DOCKERD_LOG, process.pid))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m tasks.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--tests", action="store_true",
                        help="also what the test suite needs; leaves starting the engine to the test run")
    args = parser.parse_args(argv)
    debian_packages(args.tests)
    try:
        python_packages(args.tests)
    except subprocess.CalledProcessError as error:
        say("failed (exit %d): %s" % (error.returncode, " ".join(error.cmd)))
        sys.exit(1)
    if not args.tests:
        docker_engine_from_venv()
    say("ready: run dockflow as .venv/bin/doit, or `. .venv/bin/activate` and then doit")


if __name__ == "__main__":
    main()
