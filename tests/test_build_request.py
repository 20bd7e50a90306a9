"""How a build request is sent without the SDK (tasks/engine.py), in pure logic: the
daemon's answer read back whole over a socket, and when the SDK must send it instead."""
import json

import pytest

from tasks import engine


@pytest.mark.parametrize("where, config, sdk_needed", [
    (None, None, False),
    ("DOCKER_CONFIG", {"auths": {}}, False),
    ("DOCKER_CONFIG", {"auths": {"registry.example": {"auth": "dTpw"}}}, True),
    ("DOCKER_CONFIG", {"credsStore": "pass"}, True),
    ("DOCKER_CONFIG", {"proxies": {"default": {"httpProxy": "http://proxy.example:3128"}}}, True),
    ("DOCKER_CONFIG", {"HttpHeaders": {"X-Meta": "1"}}, True),
    ("DOCKER_CONFIG", {"registry.example": {"auth": "dTpw"}}, True),  # the legacy format
    # DOCKER_CONFIG names a folder without config.json: the SDK reads the home's, so do we
    (".docker/config.json", {"auths": {"registry.example": {"auth": "dTpw"}}}, True),
    (".dockercfg", {"registry.example": {"auth": "dTpw"}}, True),
])
def test_the_sdk_sends_builds_whose_docker_config_it_must_read(tmp_path, monkeypatch, where, config, sdk_needed):
    home, folder = tmp_path / "home", tmp_path / "docker-config"
    path = {"DOCKER_CONFIG": folder / "config.json"}.get(where, home / (where or "none"))
    if config is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.setenv("HOME", str(home))
    assert engine._docker_config_matters() is sdk_needed


class FakeAnswer:
    """A unix socket that reads one request (head and sized body) and writes `answer`,
    a list of bytes and pauses (seconds): the build request engine.py sends over the
    socket, tested apart from any engine (tests/steps/test_build.py builds on a real
    one; tests/test_http_wire.py reads canned answers without a socket)."""

    def __init__(self, folder, answer):
        import socket
        import threading

        self.path = str(folder / "engine.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.request = b""
        self.thread = threading.Thread(target=self._serve, args=(answer,), daemon=True)
        self.thread.start()

    def _serve(self, answer):
        import time

        connection, _ = self.server.accept()
        with connection:
            while b"\r\n\r\n" not in self.request:
                self.request += connection.recv(65536)
            head, _, body = self.request.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += connection.recv(65536)
            for part in answer:
                if isinstance(part, bytes):
                    connection.sendall(part)
                else:
                    time.sleep(part)

    def close(self):
        self.thread.join(5)
        self.server.close()


def _tar(tmp_path):
    path = tmp_path / "context.tar"
    path.write_bytes(b"\0" * 2048)
    return open(path, "rb")


def test_a_chunked_answer_with_extensions_and_trailers_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    fake = FakeAnswer(tmp_path, [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1a;name=value\r\n" + b'{"stream": "Step 1/1 : x"}' + b"\r\n",
        b"20\r\n" + b'{"aux": {"ID": "sha256:00000001"' + b"\r\n", b"2\r\n}}\r\n",
        b"0\r\nX-Trailer: yes\r\n\r\n"])
    with _tar(tmp_path) as context:
        chunks = list(engine.Engine("unix://" + fake.path).build("s: build of x", context, tag="x", rm=True))
    fake.close()
    assert chunks == [{"stream": "Step 1/1 : x"}, {"aux": {"ID": "sha256:00000001"}}]
    head = fake.request.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /build?t=x&") and "User-Agent: dockflow" in head


def test_a_build_silent_for_longer_than_the_send_timeout_is_waited_for(tmp_path, monkeypatch):
    """A RUN that prints nothing for a while: the answer is read with no timeout."""
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    monkeypatch.setattr(engine, "SEND_TIMEOUT", 0.2)
    fake = FakeAnswer(tmp_path, [0.6, b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", b'{"stream": "ok"}'])
    with _tar(tmp_path) as context:
        chunks = list(engine.Engine("unix://" + fake.path).build("s: build of x", context, tag="x"))
    fake.close()
    assert chunks == [{"stream": "ok"}]


def test_an_engine_that_stops_mid_answer_names_the_step(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    fake = FakeAnswer(tmp_path, [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                 b"1a\r\n" + b'{"stream": "Step 1/1 : x"}' + b"\r\n"])
    with _tar(tmp_path) as context, pytest.raises(engine.EngineUnreachable) as caught:
        list(engine.Engine("unix://" + fake.path).build("s: build of x", context, tag="x"))
    fake.close()
    assert str(caught.value).startswith("s: build of x: the engine closed the connection before its answer ended")


def test_an_unsized_answer_lasts_until_the_engine_closes(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    fake = FakeAnswer(tmp_path, [b"HTTP/1.0 400 Bad Request\r\n\r\n", b'{"message": "no such ', b'thing"}'])
    with _tar(tmp_path) as context, pytest.raises(engine.StepFailed, match="^s: build of x: no such thing$"):
        list(engine.Engine("unix://" + fake.path).build("s: build of x", context, tag="x"))
    fake.close()


def test_options_the_socket_path_would_drop_are_refused():
    with pytest.raises(TypeError, match="nocache"):
        engine._build_query({"tag": "x", "nocache": True})


def test_a_buildkit_build_asks_version_2(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    fake = FakeAnswer(tmp_path, [b"HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", b'{"stream": "ok"}'])
    with _tar(tmp_path) as context:
        list(engine.Engine("unix://" + fake.path).build("s: build of x", context, buildkit=True, tag="x"))
    fake.close()
    request_line = fake.request.split(b"\r\n")[0].decode()
    assert "version=2" in request_line.split(" ")[1].split("?")[1].split("&"), request_line


@pytest.mark.parametrize("auth_config, header", [
    (None, "e30="),  # {}: the docker CLI's anonymous push
    ({"username": "ann", "password": "p?w"}, "eyJ1c2VybmFtZSI6ICJhbm4iLCAicGFzc3dvcmQiOiAicD93In0="),
])
def test_a_push_names_the_repository_and_tag_and_carries_the_credentials(tmp_path, monkeypatch, auth_config, header):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    fake = FakeAnswer(tmp_path, [b"HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n",
                                 b'{"aux": {"Digest": "sha256:ab"}}'])
    chunks = list(engine.Engine("unix://" + fake.path).push("p: push", "localhost:5000/lab/app:1.0", auth_config))
    fake.close()
    assert chunks == [{"aux": {"Digest": "sha256:ab"}}]
    head = fake.request.split(b"\r\n\r\n")[0].decode().split("\r\n")
    assert head[0] == "POST /images/localhost%3A5000%2Flab%2Fapp/push?tag=1.0 HTTP/1.1"
    assert "X-Registry-Auth: " + header in head


def test_a_push_whose_result_is_never_read_opens_no_socket(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "_docker_config_matters", lambda: False)
    daemon = engine.Engine("unix://" + str(tmp_path / "nothing-listens-here.sock"))
    daemon.push("p: push", "localhost:5000/lab/app:1.0")  # a generator: connects when read
    with pytest.raises(engine.EngineUnreachable):
        list(daemon.push("p: push", "localhost:5000/lab/app:1.0"))


class KeptAliveAnswer(FakeAnswer):
    """One request without a body (a tag), answered by `answer`."""

    def _serve(self, answer):
        connection, _ = self.server.accept()
        with connection:
            while b"\r\n\r\n" not in self.request:
                self.request += connection.recv(65536)
            connection.sendall(answer[0])


@pytest.mark.parametrize("answer, error", [
    (b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", None),
    (b'HTTP/1.1 404 Not Found\r\nContent-Length: 38\r\n\r\n{"message": "No such image: sha256:1"}', "No such image"),
    (b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', ""),  # not what tag answers: not taken for done
])
def test_a_tag_is_done_only_when_the_engine_says_created(tmp_path, answer, error):
    fake = KeptAliveAnswer(tmp_path, [answer])
    daemon = engine.Engine("unix://" + fake.path)
    try:
        if error is None:
            daemon.tag("t: tag", "sha256:1", "localhost:5000/lab/app:1.0")
        else:
            with pytest.raises(engine.StepFailed, match="^t: tag: " + error):
                daemon.tag("t: tag", "sha256:1", "localhost:5000/lab/app:1.0")
    finally:
        daemon.close()
        fake.close()
    assert fake.request.split(b"\r\n")[0].decode() == \
        "POST /images/sha256%3A1/tag?repo=localhost%3A5000%2Flab%2Fapp&tag=1.0 HTTP/1.1"
