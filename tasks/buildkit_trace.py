"""BuildKit's progress in the engine's build stream, read without a protobuf library.

With `version=2` the engine's /build answer carries BuildKit's progress as
`{"id": "moby.buildkit.trace", "aux": BASE64}`, each a protobuf StatusResponse
(buildkit's control.proto):

    StatusResponse { repeated Vertex vertexes = 1; repeated VertexStatus statuses = 2;
                     repeated VertexLog logs = 3; ... }
    Vertex         { string digest = 1; repeated string inputs = 2; string name = 3;
                     bool cached = 4; Timestamp started = 5; Timestamp completed = 6;
                     string error = 7; ... }
    VertexLog      { string vertex = 1; Timestamp timestamp = 2; int64 stream = 3; bytes msg = 4; }

Only those fields are read; statuses (bytes copied so far) and fields added by
later versions are skipped, as protobuf readers do. `Progress` turns the messages
into what `docker build --progress=plain` shows: each instruction once, when it
starts or is found in the cache, and the output of its commands, line by line.
"""
from __future__ import annotations

import base64
import re
from typing import Iterator

TRACE_ID = "moby.buildkit.trace"

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


class TraceError(ValueError):
    """A trace message that is not a protobuf message."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise TraceError("a varint runs past the end of the message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message, in order: an int for a varint,
    bytes for a length-delimited field; fixed-width fields are skipped."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, at = _varint(data, at)
            yield number, value
        elif wire_type == _LENGTH:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise TraceError("field %d runs past the end of the message" % number)
            yield number, data[at:at + length]
            at += length
        elif wire_type in (_FIXED64, _FIXED32):
            at += 8 if wire_type == _FIXED64 else 4
        else:
            raise TraceError("field %d has wire type %d, which protobuf does not have" % (number, wire_type))


def _message(data: bytes) -> dict[int, list]:
    values: dict[int, list] = {}
    for number, value in fields(data):
        values.setdefault(number, []).append(value)
    return values


def _text(values: dict[int, list], number: int) -> str:
    raw = values.get(number)
    return raw[-1].decode("utf-8", "replace") if raw else ""


def decode(aux: str) -> tuple[list[dict], list[dict]]:
    """The vertexes and logs of one trace message (its base64 `aux`):
    vertexes as {digest, name, cached, started, completed, error}, logs as
    {vertex, stream, text}."""
    try:
        response = _message(base64.b64decode(aux))
    except (ValueError, TypeError) as err:  # binascii.Error is a ValueError
        raise TraceError(str(err)) from None
    vertexes = []
    for raw in response.get(1, []):
        vertex = _message(raw)
        vertexes.append({"digest": _text(vertex, 1), "name": _text(vertex, 3), "cached": bool(vertex.get(4, [0])[-1]),
                         "started": 5 in vertex, "completed": 6 in vertex, "error": _text(vertex, 7)})
    logs = []
    for raw in response.get(3, []):
        log = _message(raw)
        logs.append({"vertex": _text(log, 1), "stream": log.get(3, [1])[-1],
                     "text": b"".join(log.get(4, [])).decode("utf-8", "replace")})
    return vertexes, logs


# `[2/3] RUN make`, `[builder 2/3] RUN make`: a Dockerfile instruction's place first.
# Not `[internal] load ...` nor `[auth] ... token for ...`: BuildKit's own work.
_INSTRUCTION = re.compile(r"^\[[^\]]*\d+/\d+\] ")
# What a vertex says when it stopped because another one failed.
_CANCELLED = "context canceled"


def _is_instruction(name: str) -> bool:
    return bool(_INSTRUCTION.match(name))


def _output_lines(text: str) -> list[str]:
    """Whole lines of a command's output as a terminal would leave them: a line
    redrawn with carriage returns (a progress bar) shows its last state; blank lines go."""
    lines = (line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    return [line for line in lines if line.strip()]


class Progress:
    """The lines to show for a build's trace messages, fed one at a time.

    An instruction is shown once: `[2/3] RUN make` when it starts, with ` (cached)`
    when the cache had it. BuildKit's own vertexes (`[internal] load ...`, `copy
    /context /`, `exporting to image`) are not shown: an instruction's name starts
    with its place, `[2/3]` or `[stage 2/3]`. A command's output comes in pieces
    that may end mid-line: a line is shown when it is whole, the rest at the end
    (`finish`). `failed` names the first instruction that failed, not those BuildKit
    cancelled because of it."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # vertex digest -> its name
        self._shown: set[str] = set()
        self._partial: dict[str, str] = {}  # vertex digest -> output not yet ended by a newline
        self.current = None  # the name of the last instruction shown: where a failure happened
        self.failed = None  # the name of the vertex BuildKit reported an error for

    def feed(self, aux: str) -> list[str]:
        vertexes, logs = decode(aux)
        lines = []
        for vertex in vertexes:
            self._names[vertex["digest"]] = vertex["name"]
            instruction = _is_instruction(vertex["name"])
            if vertex["error"] and instruction and self.failed is None and _CANCELLED not in vertex["error"]:
                self.failed = vertex["name"]
            if instruction and vertex["digest"] not in self._shown and (vertex["started"] or vertex["cached"]):
                self._shown.add(vertex["digest"])
                self.current = vertex["name"]
                lines.append(vertex["name"] + (" (cached)" if vertex["cached"] else ""))
        for log in logs:
            text = self._partial.pop(log["vertex"], "") + log["text"]
            *whole, rest = text.split("\n")
            if rest:
                self._partial[log["vertex"]] = rest
            lines.extend(_output_lines("\n".join(whole)))
        return lines

    def finish(self) -> list[str]:
        """Output left without its newline when the stream ended."""
        rest = [line for text in self._partial.values() for line in _output_lines(text)]
        self._partial.clear()
        return rest
