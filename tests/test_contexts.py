"""Which engine a step with no docker_host talks to, chosen as the docker CLI chooses:
DOCKER_HOST, then DOCKER_CONTEXT, then the docker config's current context, then the
local socket. Contexts are made by the real `docker context create`."""
import json
import re
import subprocess
from pathlib import Path

import pytest

from tasks import engine
from tasks.errors import EngineUnreachable, StepFailed
from tasks.runstate import RUN


def make_context(config_dir, name, host, *tls_args):
    subprocess.run(["docker", "--config", str(config_dir), "context", "create", name,
                    "--docker", ",".join(["host=" + host, *tls_args])], check=True, capture_output=True)


@pytest.fixture
def docker_env(monkeypatch, tmp_path):
    """A docker config folder of the test's own, and no DOCKER_* from the caller."""
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    return config_dir


def use_context(config_dir, name):
    """What `docker context use NAME` writes (a run reads it once: forget what this one read)."""
    subprocess.run(["docker", "--config", str(config_dir), "context", "use", name], check=True, capture_output=True)
    RUN.endpoints.clear()


def test_the_order_docker_host_then_docker_context_then_the_current_context(docker_env, monkeypatch):
    make_context(docker_env, "current", "unix:///run/current.sock")
    make_context(docker_env, "named", "tcp://127.0.0.1:2999")
    assert engine.default_host() == engine.DEFAULT_HOST
    use_context(docker_env, "current")
    assert engine.default_host() == "unix:///run/current.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "named")
    assert engine.default_host() == "tcp://127.0.0.1:2999"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/env.sock")
    assert engine.default_host() == "unix:///run/env.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    monkeypatch.delenv("DOCKER_HOST")
    assert engine.default_host() == engine.DEFAULT_HOST


def test_an_unknown_context_is_one_clear_line(docker_env, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "nosuch")
    with pytest.raises(EngineUnreachable, match=r"docker context 'nosuch' \(DOCKER_CONTEXT\) does not exist"):
        engine.default_host()
    (docker_env / "config.json").write_text(json.dumps({"currentContext": "gone"}))
    monkeypatch.delenv("DOCKER_CONTEXT")
    with pytest.raises(EngineUnreachable, match="'gone' .the docker config's currentContext."):
        engine.default_host()


def test_a_contexts_tls_files_go_to_the_sdk_and_not_to_the_plain_socket(docker_env, monkeypatch, tmp_path):
    """A TLS context is spoken to by the SDK, with the context's CA and client key."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    (tmp_path / "ca.pem").write_bytes((tmp_path / "cert.pem").read_bytes())
    make_context(docker_env, "secure", "tcp://127.0.0.1:2376", "ca=%s" % (tmp_path / "ca.pem"),
                 "cert=%s" % (tmp_path / "cert.pem"), "key=%s" % (tmp_path / "key.pem"))
    monkeypatch.setenv("DOCKER_CONTEXT", "secure")
    host, tls = engine._default_endpoint()
    assert host == "tcp://127.0.0.1:2376"
    assert {name: Path(tls[name]).read_text() for name in ("ca", "cert", "key")} == {
        name: (tmp_path / (name + ".pem")).read_text() for name in ("ca", "cert", "key")}
    assert tls["verify"] is True
    with pytest.raises(engine._NeedsSdk):
        engine.Engine(host)._connect(timeout=1)
    sdk_tls = engine.Engine(host).tls_config()
    assert sdk_tls.cert == (tls["cert"], tls["key"]) and (sdk_tls.ca_cert, sdk_tls.verify) == (tls["ca"], True)
    assert engine.Engine("tcp://127.0.0.1:2375").tls_config() is False  # not the context's engine


@pytest.mark.parametrize("address, why", [
    ("tcp://[::1", "Invalid IPv6 URL"),
    ("tcp://host:99999", "Port out of range"),
    ("ftp://host", "unknown scheme"),
])
def test_an_impossible_engine_address_is_one_clear_line(address, why):
    with pytest.raises(StepFailed, match=re.escape("engine address %r: %s" % (address, why))):
        engine.Engine(address)


def test_a_bad_docker_host_fails_the_step_in_one_line(offline_project):
    offline_project.workflow("""
        steps:
          tag:
            kind: tag
            source: a/b:1
            tags: [a/c:1]
        """)
    done = offline_project.doit("tag", env={"DOCKER_HOST": "tcp://[::1"})
    assert done.returncode == 1, done.output
    assert "engine address 'tcp://[::1': Invalid IPv6 URL" in done.output
    assert "Traceback" not in done.output


BUILD_FLOW = """
    steps:
      app:
        kind: build
        context: app
        image: %s
    """


@pytest.mark.hostb
@pytest.mark.parametrize("how", ["DOCKER_CONTEXT", "docker context use"])
def test_a_context_sends_the_steps_to_its_engine(project, hostb, names, busybox_image, docker_cli, tmp_path, how):
    """A context naming host B's engine: the build lands there, not in the local engine."""
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    make_context(config_dir, "hostb", hostb.docker_host)
    env = {"DOCKER_HOST": "", "DOCKER_CONFIG": str(config_dir)}
    if how == "DOCKER_CONTEXT":
        env["DOCKER_CONTEXT"] = "hostb"
    else:
        use_context(config_dir, "hostb")
    hostb_has_base = hostb.docker("images", "-q", busybox_image).strip()
    if not hostb_has_base:
        saved = docker_cli("save", busybox_image, input=b"")
        subprocess.run(["docker", "-H", hostb.docker_host, "load"], input=saved, check=True, capture_output=True)
    ref = names + "/ctx:1"
    project.write("workflows/app/Dockerfile", "FROM %s\nCMD [\"true\"]\n" % busybox_image)
    project.workflow(BUILD_FLOW % ref)
    try:
        done = project.doit("app", env=env)
        assert done.returncode == 0, done.output
        assert hostb.docker("images", "-q", ref).strip()
        assert not docker_cli("images", "-q", ref).strip()
        again = project.doit("app", env=env)
        assert "-- app" in again.output, again.output
    finally:
        hostb.docker("rmi", "-f", ref, check=False)


def test_a_context_whose_socket_is_gone_says_so(project, tmp_path):
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    make_context(config_dir, "gone", "unix://%s" % (tmp_path / "no.sock"))
    project.write("workflows/app/Dockerfile", "FROM scratch\n")
    project.workflow(BUILD_FLOW % "t/gone:1")
    done = project.doit("app", env={"DOCKER_HOST": "", "DOCKER_CONFIG": str(config_dir), "DOCKER_CONTEXT": "gone"})
    assert done.returncode == 1, done.output
    assert "cannot reach the Docker engine at unix://%s" % (tmp_path / "no.sock") in done.output
    assert "Traceback" not in done.output
