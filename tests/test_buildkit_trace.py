"""BuildKit's progress messages -> the lines a build shows (tasks/buildkit_trace.py).

The .jsonl files in tests/data/buildkit are build streams answered by a real engine
(docker.io 20.10.24, POST /build?version=2), kept as they came."""
import base64
import json
import os

import pytest

from tasks import buildkit_trace

DATA = os.path.join(os.path.dirname(__file__), "data", "buildkit")


def chunks(name):
    with open(os.path.join(DATA, name + ".jsonl")) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def shown(name):
    progress = buildkit_trace.Progress()
    lines = []
    for chunk in chunks(name):
        if chunk.get("id") == buildkit_trace.TRACE_ID:
            lines += progress.feed(chunk["aux"])
    return lines + progress.finish(), progress


def test_a_build_shows_its_instructions_once_and_its_commands_output():
    lines, progress = shown("builds")
    assert lines == ["[1/4] FROM docker.io/lab/busybox:1.35", "[2/4] WORKDIR /srv", "[3/4] COPY data.txt .",
                     "[4/4] RUN cat data.txt", "hello from the context"]
    assert progress.failed is None


def test_output_split_mid_line_is_joined_and_a_failure_names_its_instruction():
    # printf "one\ntwo", then 0.3 s later " three": "two three" is one line
    lines, progress = shown("run_fails")
    assert lines == ["[1/3] FROM docker.io/lab/busybox:1.35",
                     '[2/3] RUN printf "one\\ntwo" && sleep 0.3 && echo " three" && echo to-err >&2',
                     "one", "two three", "to-err", "[3/3] RUN exit 3"]
    assert progress.failed == "[3/3] RUN exit 3"


def test_an_instruction_the_cache_had_says_so():
    lines, progress = shown("cached_then_fails")
    assert lines[1:] == ['[2/3] RUN printf "one\\ntwo" && sleep 0.3 && echo " three" && echo to-err >&2 (cached)',
                         "[3/3] RUN exit 3"]
    assert progress.failed == "[3/3] RUN exit 3"


def test_output_without_a_final_newline_comes_out_at_the_end():
    log = _field(3, _field(1, b"sha256:v") + _field(4, b"no newline"))
    progress = buildkit_trace.Progress()
    assert progress.feed(base64.b64encode(log).decode()) == []
    assert progress.finish() == ["no newline"]
    assert progress.finish() == []


def test_fields_of_later_versions_and_fixed_width_fields_are_skipped():
    vertex = (_field(1, b"sha256:v") + _field(3, b"[1/1] RUN x") + bytes([0x20, 1])  # cached = true
              + bytes([(9 << 3) | 1]) + b"\0" * 8 + bytes([(10 << 3) | 5]) + b"\0" * 4 + _field(11, b"new"))
    vertexes, logs = buildkit_trace.decode(base64.b64encode(_field(1, vertex)).decode())
    assert vertexes == [{"digest": "sha256:v", "name": "[1/1] RUN x", "cached": True, "started": False,
                         "completed": False, "error": ""}]
    assert logs == []


@pytest.mark.parametrize("raw", [b"\x0a\x05ab", b"\x0a\xff", bytes([(1 << 3) | 3])])
def test_a_message_that_is_not_protobuf_is_a_trace_error(raw):
    with pytest.raises(buildkit_trace.TraceError):
        buildkit_trace.decode(base64.b64encode(raw).decode())


def test_base64_that_does_not_decode_is_a_trace_error():
    with pytest.raises(buildkit_trace.TraceError):
        buildkit_trace.decode("not base64!")


def test_a_varint_longer_than_one_byte_is_read_whole():
    # a 300-byte name: its length takes two bytes (0xac 0x02)
    name = "[1/1] RUN " + "x" * 290
    vertex = _field(1, b"sha256:v") + _field(3, name.encode()) + _field(5, b"")
    assert buildkit_trace.decode(base64.b64encode(_field(1, vertex)).decode())[0][0]["name"] == name


def _field(number, payload):
    """A length-delimited protobuf field."""
    length, size = bytearray(), len(payload)
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return bytes([(number << 3) | 2]) + bytes(length) + payload


def vertex(digest, name, error="", started=True):
    fields = _field(1, digest.encode()) + _field(3, name.encode())
    if started:
        fields += _field(5, b"")
    if error:
        fields += _field(6, b"") + _field(7, error.encode())
    return _field(1, fields)


def message(*parts):
    return base64.b64encode(b"".join(parts)).decode()


def test_the_first_failure_is_named_not_the_stages_cancelled_because_of_it():
    progress = buildkit_trace.Progress()
    progress.feed(message(vertex("sha256:a", "[builder 2/3] RUN make"), vertex("sha256:b", "[stage-1 2/2] RUN apt")))
    progress.feed(message(vertex("sha256:a", "[builder 2/3] RUN make", error="exit code: 2")))
    progress.feed(message(vertex("sha256:b", "[stage-1 2/2] RUN apt", error="context canceled")))
    assert progress.failed == "[builder 2/3] RUN make"


def test_buildkit_s_own_work_is_not_shown_as_an_instruction():
    progress = buildkit_trace.Progress()
    shown = progress.feed(message(vertex("sha256:a", "[internal] load metadata for docker.io/library/x"),
                                  vertex("sha256:b", "[auth] library/x:pull token for registry-1.docker.io"),
                                  vertex("sha256:c", "copy /context /"), vertex("sha256:d", "exporting to image"),
                                  vertex("sha256:e", "[stage 1/2] FROM x")))
    assert shown == ["[stage 1/2] FROM x"] and progress.current == "[stage 1/2] FROM x"


def test_a_redrawn_line_shows_its_last_state_and_blank_lines_go():
    progress = buildkit_trace.Progress()
    log = _field(3, _field(1, b"sha256:v") + _field(4, b"10%\r50%\r100%\r\n\n\ndone\n"))
    assert progress.feed(base64.b64encode(log).decode()) == ["100%", "done"]


def follow(name, buildkit=True):
    from tasks.steps import build

    return build.follow_build("s: build of x from Dockerfile", iter(chunks(name)), None, buildkit)


def test_a_buildkit_build_gives_the_image_id_it_made():
    assert follow("builds") == "sha256:fe38648c9bd4359063d0a2307d22cf0c97561ae2650439664004e86c1950d963"


def test_a_failed_buildkit_build_names_its_instruction_in_the_legacy_builder_s_words(capsys):
    from tasks.steps import build

    with pytest.raises(build.StepFailed) as failed:
        follow("run_fails")
    assert str(failed.value).startswith("s: build of x from Dockerfile failed at `RUN exit 3`: executor failed "
                                        "running [/bin/sh -c exit 3]: exit code: 3")
    assert "| to-err" in str(failed.value)  # the last lines of its output


def test_buildkit_s_wrapping_of_a_dockerfile_error_is_taken_off():
    from tasks.steps import build

    words = ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error "
             "line 1: unknown instruction: FROMM")  # engine 20.10's, for `FROMM nothing`
    refused = [{"errorDetail": {"message": words}, "error": words}]
    with pytest.raises(build.StepFailed, match="failed: dockerfile parse error line 1: unknown instruction: FROMM$"):
        build.follow_build("s: build of x from Dockerfile", iter([{"id": buildkit_trace.TRACE_ID, "aux": ""}]
                                                                  + refused), None, True)


def test_a_progress_message_that_cannot_be_read_is_skipped_and_said(capsys):
    from tasks.steps import build

    stream = [{"id": buildkit_trace.TRACE_ID, "aux": "not base64!"}] + chunks("builds")
    assert build.follow_build("s: build of x", iter(stream), None, True).startswith("sha256:fe38648c")
    assert "1 of BuildKit's progress messages could not be read" in capsys.readouterr().out


def test_a_build_failure_is_not_taken_for_a_refusal_of_buildkit_by_its_step_s_name():
    """The step's own words (`buildkit_demo: ...`) name BuildKit; the engine's do not."""
    from tasks.steps import build

    failed = [{"errorDetail": {"message": "failed to compute cache key: not found"},
               "error": "failed to compute cache key: not found"}]
    with pytest.raises(build.StepFailed, match="failed to compute cache key: not found$"):
        build.follow_build("buildkit_demo: build of app from Dockerfile", iter(failed), None, True)
