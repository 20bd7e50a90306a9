"""tasks/registry_api.py against registries that answer badly or with hostile intent.
The servers here are small HTTP servers of the test's own on loopback: what is checked
is what our client does with their answers, not Docker's behaviour (test_push has the
real registry)."""
import http.server
import json
import threading

import pytest

from tasks import registry_api, workflow
from tasks.errors import StepFailed
from tasks.registry_api import RegistryDenied


class Answers(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the (status, headers, body) of its path; records requests."""
    routes = {}
    seen = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
        path = self.path.split("?")[0]
        if (self.headers.get("Authorization") or "").startswith("Bearer"):
            path += " (with a token)"
        status, headers, body = self.routes.get(path, (404, {}, b"{}"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """(address, routes, seen) of a plain-HTTP server on 127.0.0.1."""
    handler = type("Handler", (Answers,), {"routes": {}, "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1:%d" % httpd.server_address[1], handler.routes, handler.seen
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def challenge(realm):
    return (401, {"WWW-Authenticate": 'Bearer realm="%s",service="reg"' % realm}, b"{}")


def test_credentials_never_go_in_clear_text_to_a_realm_on_another_host(server):
    address, routes, seen = server
    routes["/v2/app/manifests/1"] = challenge("http://192.0.2.1:8080/token")
    with pytest.raises(RegistryDenied, match="plain http on another host; the credentials are not sent"):
        registry_api.Registry(address, ("lab", "secret")).manifest("app", "1")
    assert [path for path, _ in seen] == ["/v2/app/manifests/1"]


def test_a_loopback_realm_may_be_plain_http(server):
    address, routes, seen = server
    routes["/v2/app/manifests/1"] = challenge("http://%s/token" % address)
    routes["/token"] = (200, {}, json.dumps({"token": "t0k"}).encode())
    assert registry_api.Registry(address, ("lab", "secret")).manifest("app", "1") is None  # 404 with the token
    assert seen[-1] == ("/v2/app/manifests/1", "Bearer t0k")


@pytest.mark.parametrize("reply", [b"<html>gateway</html>", b"[1, 2]", b'{"token": 5}', b"{}"])
def test_a_token_reply_without_a_token_is_one_clear_error(server, reply):
    address, routes, seen = server
    routes["/v2/app/manifests/1"] = challenge("http://%s/token" % address)
    routes["/token"] = (200, {}, reply)
    with pytest.raises(StepFailed, match="answered 200 without a token"):
        registry_api.Registry(address, ("lab", "secret")).manifest("app", "1")


@pytest.mark.parametrize("realm", ["ftp://%s/token", "http://[::1/token", "http://h:99999/token"])
def test_a_realm_that_is_no_http_address_is_refused(server, realm):
    address, routes, seen = server
    routes["/v2/app/manifests/1"] = challenge(realm.replace("%s", address) if "%s" in realm else realm)
    with pytest.raises(StepFailed, match="token realm"):
        registry_api.Registry(address, ("lab", "secret")).manifest("app", "1")


@pytest.mark.parametrize("body, text", [
    (b"{}", "{}"),
    (b'{"errors": [{"code": "UNKNOWN", "message": "boom"}]}', "UNKNOWN: boom"),
    (b"not json", "not json"),
    (b'"a string"', '"a string"'),
])
def test_an_error_answer_is_text(body, text):
    assert registry_api._error_text(body) == text


def test_a_registry_500_names_its_answer_as_text(server):
    address, routes, seen = server
    routes["/v2/app/manifests/1"] = (500, {}, b"{}")
    with pytest.raises(StepFailed) as raised:
        registry_api.Registry(address).manifest("app", "1")
    assert str(raised.value).endswith("answered 500: {}")


def test_an_image_gone_between_check_and_push_is_a_clear_error(tmp_path):
    """push's comparison of an image the engine no longer has: a sentence, not an AttributeError."""
    from tasks import engine
    from tasks.steps import push

    flow = tmp_path / "workflows" / "flow.yaml"
    flow.parent.mkdir()
    flow.write_text("steps:\n  push:\n    kind: push\n    image: t/app:1\n    registry: localhost:5000\n")
    step = workflow.load_file(str(flow), str(tmp_path / "cache")).steps["push"]
    with pytest.raises(StepFailed, match="image t/app:1 is not in the engine"):
        push._compare(step, engine.Engine("unix:///nonexistent.sock"), None, {})
