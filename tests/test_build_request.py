"""How a build request is sent without the SDK (tasks/engine.py), in pure logic: the
daemon's JSON stream read back whole, and when the SDK must send it instead."""
import json

import pytest

from tasks import engine


def test_the_build_stream_is_read_whole_objects_at_a_time():
    """The daemon's JSON stream arrives in pieces that split objects or hold several."""
    pieces = [b'{"stream": "Step 1/2 : FROM x\\n"}\r\n{"str', b'eam": " ---> abc\\n"}', b'\n{"aux": {"ID": "sha256:1"}}']
    assert list(engine._json_stream(iter(pieces))) == [
        {"stream": "Step 1/2 : FROM x\n"}, {"stream": " ---> abc\n"}, {"aux": {"ID": "sha256:1"}}]


def test_a_stream_cut_inside_an_object_is_an_error():
    with pytest.raises(engine.StepFailed, match="ended inside a JSON object"):
        list(engine._json_stream(iter([b'{"stream": "Step 1/2'])))


@pytest.mark.parametrize("config, sdk_needed", [
    (None, False),
    ({"auths": {}}, False),
    ({"auths": {"registry.example": {"auth": "dTpw"}}}, True),
    ({"credsStore": "pass"}, True),
    ({"proxies": {"default": {"httpProxy": "http://proxy.example:3128"}}}, True),
])
def test_the_sdk_sends_builds_whose_docker_config_it_must_read(tmp_path, monkeypatch, config, sdk_needed):
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert engine._docker_config_matters() is sdk_needed
