"""Take a fresh machine to a working dockflow: `python3 -m tasks.bootstrap [--tests]`.

Installs what is missing and says what it did:
- this package and its Python dependencies (pip, editable, from this folder);
- on Debian as root, the Debian packages for what no command provides yet:
  Docker Engine (docker.io), busybox-static (the lab's offline base image),
  docker-registry (the lab's offline registry:2 image), and with --tests also
  openssh-server and rsync (the second host of the tests), cron and graphviz;
- a running Docker engine, when none answers and this is not a --tests run (the
  test run starts and stops its own). It keeps running for the lab: stop it with
  `kill PID` (the pid is printed and kept in /run/dockflow-dockerd.pid).
Runs nothing twice: each part is skipped when already there.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON_MODULES = ("doit", "docker", "jsonschema", "yaml", "loguru", "rich")
# command or file that proves a package is there -> Debian package
# docker-registry: the lab's registry_image step packs its binary into registry:2 (offline).
DEBIAN_PACKAGES = {"dockerd": "docker.io", "/bin/busybox": "busybox-static", "docker-registry": "docker-registry"}
DEBIAN_TEST_PACKAGES = {"sshd": "openssh-server",
                        "rsync": "rsync", "ip": "iproute2", "nsenter": "util-linux",
                        "crontab": "cron", "dot": "graphviz"}
DOCKERD_LOG = "/var/log/dockflow-dockerd.log"
DOCKERD_PID = "/run/dockflow-dockerd.pid"


def say(message):
    print("bootstrap: " + message, flush=True)


def run(command, **kwargs):
    say("$ " + " ".join(command))
    subprocess.run(command, check=True, **kwargs)


def python_packages(with_tests):
    missing = []
    for name in PYTHON_MODULES + (("pytest", "hypothesis") if with_tests else ()):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    try:
        from importlib.metadata import version
        version("dockflow")
    except Exception:
        missing.append("dockflow")
    if not missing:
        say("python packages: all there")
        return
    target = ".[test]" if with_tests else "."
    # compat: a plain path entry. The default editable mode installs an import hook
    # that costs about 10 ms at every Python start, so at every `doit build_app`.
    run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--config-settings", "editable_mode=compat", "-e", target], cwd=PROJECT)


def doit_on_path():
    """pip run as `python -m pip` does not refresh pyenv's shims, and pyenv runs this
    very script with the interpreter's own bin folder first on PATH: look for `doit`
    as the user's shell will, without that folder."""
    scripts = os.path.dirname(sys.executable)
    if shutil.which("pyenv"):
        run(["pyenv", "rehash"])
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    prepended_by_pyenv = os.path.realpath(scripts).startswith(os.path.realpath(pyenv_root) + os.sep)
    user_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                if not (prepended_by_pyenv and os.path.realpath(p) == os.path.realpath(scripts)))
    if shutil.which("doit", path=user_path) or shutil.which("doit", path=scripts) is None:
        return
    if os.geteuid() == 0 and os.path.isdir("/usr/local/bin") and not os.path.exists("/usr/local/bin/doit"):
        os.symlink(os.path.join(scripts, "doit"), "/usr/local/bin/doit")
        say("linked /usr/local/bin/doit -> " + os.path.join(scripts, "doit"))
    else:
        say("doit is installed in %s: add that folder to PATH, or use `python3 -m doit`" % scripts)


def _present(probe):
    return os.path.exists(probe) if probe.startswith("/") else bool(shutil.which(probe))


def debian_packages(with_tests):
    wanted = dict(DEBIAN_PACKAGES, **(DEBIAN_TEST_PACKAGES if with_tests else {}))
    missing = sorted({package for probe, package in wanted.items() if not _present(probe)})
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


def docker_engine():
    sys.path.insert(0, PROJECT)
    from tasks import engine

    host = engine.default_host()
    if engine.Engine(host).ping():
        say("Docker engine answers at " + host)
        return
    if not host.startswith("unix://") or os.geteuid() != 0 or not shutil.which("dockerd"):
        say("no Docker engine answers at %s: start one (dockerd) or set DOCKER_HOST" % host)
        sys.exit(1)
    with open(DOCKERD_LOG, "ab") as log:
        process = subprocess.Popen(["dockerd", "-H", host], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if engine.Engine(host).ping():
            with open(DOCKERD_PID, "w") as handle:
                handle.write("%d\n" % process.pid)
            say("started dockerd (pid %d, log %s); it keeps running: stop it with `kill %d`"
                % (process.pid, DOCKERD_LOG, process.pid))
            return
        time.sleep(0.3)
    say("dockerd did not answer within 60 s; see " + DOCKERD_LOG)
    sys.exit(1)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m tasks.bootstrap", description=__doc__.split("\n")[0])
    parser.add_argument("--tests", action="store_true",
                        help="also what the test suite needs; leaves starting the engine to the test run")
    args = parser.parse_args(argv)
    debian_packages(args.tests)
    python_packages(args.tests)
    doit_on_path()
    if not args.tests:
        docker_engine()
    say("ready")


if __name__ == "__main__":
    main()
