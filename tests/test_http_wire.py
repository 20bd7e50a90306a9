"""tasks/http_wire.py against canned answers: the engine's HTTP/1.1 read back as it
arrives (sized, chunked, unsized), its JSON streams split anywhere, and a kept-alive
socket the engine closed opened once afresh. No engine: tests/test_engine.py has one."""
import io
import socket

import pytest

from tasks import http_wire
from tasks.errors import StepFailed


def answer(text):
    return io.BytesIO(text)


def test_a_sized_answer_is_read_to_its_length_and_no_further():
    reader = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Name: a:b\r\n\r\nhello" + b"HTTP/1.1 204")
    status, headers = http_wire.read_head(reader)
    assert (status, headers) == (200, {"content-length": "5", "x-name": "a:b"})
    assert b"".join(http_wire.body_pieces(reader, headers)) == b"hello"
    assert reader.read() == b"HTTP/1.1 204"  # the next answer on the kept-alive socket


def test_a_chunked_answer_with_extensions_and_trailers_arrives_chunk_by_chunk():
    reader = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                    b"3;name=value\r\nabc\r\n" b"a\r\n0123456789\r\n" b"0\r\nX-Trailer: yes\r\n\r\n" b"next")
    status, headers = http_wire.read_head(reader)
    assert list(http_wire.body_pieces(reader, headers)) == [b"abc", b"0123456789"]
    assert reader.read() == b"next"


@pytest.mark.parametrize("closing, connection, body", [
    (True, "", b"all of it"),            # we asked for Connection: close
    (False, "Connection: close\r\n", b"all of it"),
    (False, "", b""),                    # kept alive and unsized: no body (a 204, say)
])
def test_an_unsized_answer_lasts_until_close_only_where_the_connection_closes(closing, connection, body):
    reader = answer(b"HTTP/1.0 400 Bad Request\r\n" + connection.encode() + b"\r\nall of it")
    status, headers = http_wire.read_head(reader)
    assert status == 400
    assert b"".join(http_wire.body_pieces(reader, headers, closing=closing)) == body


@pytest.mark.parametrize("cut", [b"", b"garbage\r\n", b"HTTP/1.1 200 OK\r\nContent-Le",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"])
def test_an_answer_cut_short_is_closed(cut):
    with pytest.raises(http_wire.Closed):
        reader = answer(cut)
        list(http_wire.body_pieces(reader, http_wire.read_head(reader)[1]))


def test_the_json_stream_is_read_whole_objects_at_a_time():
    """The daemon's JSON stream arrives in pieces that split objects or hold several."""
    pieces = [b'{"stream": "Step 1/2 : FROM x\\n"}\r\n{"str', b'eam": " ---> abc\\n"}', b'\n{"aux": {"ID": "sha256:1"}}']
    assert list(http_wire.json_stream("x: build of y", iter(pieces))) == [
        {"stream": "Step 1/2 : FROM x\n"}, {"stream": " ---> abc\n"}, {"aux": {"ID": "sha256:1"}}]


def test_a_character_split_between_pieces_is_whole():
    text = '{"stream": "caf\u00e9"}'.encode()
    cut = text.index(b"\xa9")  # inside the two bytes of the e acute
    assert list(http_wire.json_stream("x", iter([text[:cut], text[cut:]]))) == [{"stream": "caf\u00e9"}]


def test_a_stream_cut_inside_an_object_is_an_error():
    with pytest.raises(StepFailed, match="^x: build of y: the engine's answer ended inside a JSON object"):
        list(http_wire.json_stream("x: build of y", iter([b'{"stream": "Step 1/2'])))


@pytest.mark.parametrize("body, message", [
    (b'{"message": "No such image: x"}', "No such image: x"),
    (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
])
def test_the_engines_sentence_is_taken_from_an_error_answer(body, message):
    assert http_wire.error_message(body) == message


@pytest.fixture
def canned():
    """canned(*answers): a CannedSockets whose sockets are closed after the test."""
    made = []

    def make(*answers):
        made.append(CannedSockets(*answers))
        return made[-1]
    yield make
    for sockets in made:
        sockets.close()


class CannedSockets:
    """A `connect` for KeptAlive: each new socket gets the next canned answer, then the
    engine's end closes (as a daemon that drops an idle kept-alive connection)."""

    def __init__(self, *answers):
        self.answers, self.requests = list(answers), []

    def __call__(self):
        ours, engines = socket.socketpair()
        engines.sendall(self.answers.pop(0))
        self.requests.append(engines)
        engines.shutdown(socket.SHUT_WR)
        return ours

    def request(self, number):
        return self.requests[number].recv(65536)

    def close(self):
        for engines in self.requests:
            engines.close()


def test_a_kept_alive_socket_answers_again_and_is_opened_afresh_once_closed(canned):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    connect = canned(ok + ok, ok)
    wire = http_wire.KeptAlive(connect)
    assert wire.request("GET", "/images/a/json") == (200, b"{}")
    assert wire.request("GET", "/images/b/json") == (200, b"{}")    # the same socket
    assert len(connect.requests) == 1
    assert wire.request("GET", "/images/c/json") == (200, b"{}")    # that one is closed now: a new one
    assert len(connect.requests) == 2
    assert connect.request(1).startswith(b"GET /images/c/json HTTP/1.1\r\nHost: docker\r\n")
    wire.close()


def test_a_socket_closed_twice_in_a_row_is_closed(canned):
    connect = canned(b"", b"HTTP/1.1 20")
    with pytest.raises(http_wire.Closed):
        http_wire.KeptAlive(connect).request("GET", "/_ping")
    assert len(connect.requests) == 2


def test_an_answer_saying_connection_close_closes_the_socket(canned):
    connect = canned(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    wire = http_wire.KeptAlive(connect)
    assert wire.request("GET", "/images/x/json") == (404, b"")
    assert wire.opened is None


def test_blocks_sent_chunked_are_read_back_as_they_were():
    """A load's tar goes as chunks (its size is not known up front); empty blocks are
    skipped, since a chunk of size 0 ends the body."""
    blocks = [b"a" * 3, b"", b"b" * 70000, b"c"]
    sent = b"".join(http_wire.chunked(blocks))
    reader = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + sent + b"next")
    status, headers = http_wire.read_head(reader)
    assert list(http_wire.body_pieces(reader, headers)) == [block for block in blocks if block]
    assert reader.read() == b"next"


def test_a_saved_tar_is_handed_on_in_blocks_of_the_asked_size():
    pieces = [b"x" * 32768] * 5 + [b"y" * 10]
    blocks = list(http_wire.rechunked(pieces, 65536))
    assert [len(block) for block in blocks] == [65536, 65536, 32778]
    assert b"".join(blocks) == b"".join(pieces)
