"""Plain HTTP/1.1 to a Docker engine's socket, written by hand with the standard library.

Not http.client: importing it costs about 8 ms of every no-op run, and the engine needs
only these requests: a GET on a kept-alive socket (inspects, /info, listings), a POST
of a tar file answered by a JSON stream (build, import), and the save and load of
images (a tar streamed back; a tar streamed in chunks). tasks/engine.py decides what to
ask and maps these errors to its own; tests/test_http_wire.py reads canned answers.
"""
from __future__ import annotations

import codecs
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO

from .errors import StepFailed


class Closed(Exception):
    """The engine closed the connection before its answer ended (or sent no HTTP)."""


def read_head(reader: IO[bytes]) -> tuple[int, dict[str, str]]:
    """(status, headers) of an HTTP/1.1 answer; header names in lower case."""
    status_line = reader.readline()
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise Closed() from None  # nothing, or not an HTTP answer
    headers = {}
    for line in iter(reader.readline, b"\r\n"):
        if not line:
            raise Closed()
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def body_pieces(reader: IO[bytes], headers: dict[str, str], closing: bool = False) -> Iterator[bytes]:
    """The answer's body as it arrives: chunk by chunk, or all of a sized body. An
    unsized one lasts until the engine closes the connection, if it is `closing`
    (asked to with Connection: close), else it is empty (a kept-alive 204, say)."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        if "content-length" in headers:
            yield reader.read(int(headers["content-length"]))
        elif closing or headers.get("connection", "").lower() == "close":
            yield from iter(lambda: reader.read(1 << 20), b"")  # a save's tar: not all in memory at once
        return
    while True:
        line = reader.readline()
        if not line:
            raise Closed()
        size = int(line.split(b";")[0], 16)
        if size == 0:
            while reader.readline() not in (b"\r\n", b""):
                pass  # trailers
            return
        yield reader.read(size)
        reader.readline()


def json_stream(what: str, pieces: Iterator[bytes]) -> Iterator[Any]:
    """The JSON objects of a stream whose pieces may hold several, or part of one;
    StepFailed naming `what` when it ends inside one."""
    decoder, text = json.JSONDecoder(), codecs.getincrementaldecoder("utf-8")("replace")
    buffer = ""
    for piece in pieces:
        buffer += text.decode(piece)
        while True:
            buffer = buffer.lstrip()
            if not buffer:
                break
            try:
                chunk, end = decoder.raw_decode(buffer)
            except ValueError:
                break  # the rest of this object is in the next piece
            yield chunk
            buffer = buffer[end:]
    if buffer.strip():
        raise StepFailed("%s: the engine's answer ended inside a JSON object: %r" % (what, buffer[:200]))


def error_message(body: bytes) -> str:
    """The engine's sentence in an error answer: its JSON "message", else the body's start."""
    try:
        return json.loads(body).get("message", "")
    except ValueError:
        return body[:200].decode(errors="replace")


class KeptAlive:
    """One socket to the engine, opened by `connect` at the first GET and kept open for
    the next; one request at a time on it (doit -P runs steps in threads)."""

    def __init__(self, connect: Callable[[], socket.socket]) -> None:
        self.connect = connect
        self.lock = threading.RLock()  # get() closes the socket it holds on failure
        self.opened: tuple[socket.socket, BinaryIO] | None = None

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        """(status, body) of a request with no body (GET, or a POST that may be sent
        twice: a tag's second sets what the first set). A kept-alive socket the engine
        has closed since is opened afresh once; Closed if that one is closed too.
        OSError as raised."""
        request = ("%s %s HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockflow\r\n%s\r\n"
                   % (method, path, "" if method == "GET" else "Content-Length: 0\r\n")).encode()
        with self.lock:
            for attempt in (1, 2):
                try:
                    sock, reader = self.open()
                    sock.sendall(request)
                    return self.answer(reader)
                except (Closed, BrokenPipeError, ConnectionResetError):
                    self.close()
                    if attempt == 2:
                        raise Closed() from None
                except OSError:
                    self.close()
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def open(self) -> tuple[socket.socket, BinaryIO]:
        if self.opened is None:
            sock = self.connect()
            self.opened = (sock, sock.makefile("rb"))
        return self.opened

    def answer(self, reader: BinaryIO) -> tuple[int, bytes]:
        status, headers = read_head(reader)
        body = b"".join(body_pieces(reader, headers))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        with self.lock:
            if self.opened is not None:
                sock, reader = self.opened
                reader.close()
                sock.close()
                self.opened = None


def post_tar(what: str, sock: socket.socket, path: str, query: dict[str, str], tar_file: BinaryIO
             ) -> Iterator[Any]:
    """POST the tar file to `path` on `sock` (closed after): the JSON objects the engine
    streams back. StepFailed naming `what` for an answer other than 200; Closed or OSError as met."""
    request = ("POST %s?%s HTTP/1.1\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n"
               % (path, urllib.parse.urlencode(query, doseq=True), os.fstat(tar_file.fileno()).st_size))
    return json_stream(what, exchange(what, sock, request, tar_file))


def exchange(what: str, sock: socket.socket, request: str, tar_file: BinaryIO | None = None,
             blocks: Iterable[bytes] = ()) -> Iterator[bytes]:
    """Send `request` (its first lines: Host, User-Agent and Connection: close follow)
    and its body (a file, sent whole, or byte blocks) on `sock` (closed after): the pieces
    of the answer's body as they come.
    StepFailed naming `what` for an answer other than 200; Closed or OSError as met."""
    head = request + "Host: docker\r\nUser-Agent: dockflow\r\nConnection: close\r\n\r\n"
    with sock, sock.makefile("rb") as reader:
        try:
            sock.sendall(head.encode())
            if tar_file is not None:
                sock.sendfile(tar_file, 0, os.fstat(tar_file.fileno()).st_size)
            for block in blocks:
                sock.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the engine answered before reading it all: its answer says why
        sock.settimeout(None)  # the answer is read with no timeout: a RUN may print nothing for long
        status, headers = read_head(reader)
        pieces = body_pieces(reader, headers, closing=True)
        if status != 200:
            raise StepFailed("%s: %s" % (what, error_message(b"".join(pieces))))
        yield from pieces


def chunked(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks in HTTP/1.1 chunked encoding (a load's size is not known up front)."""
    for block in blocks:
        if block:
            yield b"%x\r\n" % len(block) + block + b"\r\n"
    yield b"0\r\n\r\n"


def rechunked(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The bytes of `pieces` in blocks of `size` (the engine sends a save in 32 KiB chunks;
    its reader writes and hashes fewer, larger ones), the last one shorter."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)
