"""Image references are compared in Docker's canonical form."""
import pytest

from tasks import refs


@pytest.mark.parametrize("text, canonical, name, tag", [
    ("basic-app", "docker.io/library/basic-app:latest", "basic-app", "latest"),
    ("library/basic-app:latest", "docker.io/library/basic-app:latest", "basic-app", "latest"),
    ("docker.io/basic-app", "docker.io/library/basic-app:latest", "basic-app", "latest"),
    ("lab/basic-app:1.0.0", "docker.io/lab/basic-app:1.0.0", "lab/basic-app", "1.0.0"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app", "v1"),
    ("localhost/app", "localhost/app:latest", "localhost/app", "latest"),
    ("my.Registry.io/team/app:1.0-rc_1", "my.Registry.io/team/app:1.0-rc_1", "my.Registry.io/team/app", "1.0-rc_1"),
    ("a/b/c", "docker.io/a/b/c:latest", "a/b/c", "latest"),
    # distribution/reference's grammar (what Docker parses with):
    ("a__b", "docker.io/library/a__b:latest", "a__b", "latest"),           # two underscores are one separator
    ("a--b.c_d", "docker.io/library/a--b.c_d:latest", "a--b.c_d", "latest"),  # any number of dashes
    ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x", "latest"),     # an IPv6 registry
    ("Upper/app", "Upper/app:latest", "Upper/app", "latest"),  # upper case: a registry host (engine 20.10 refuses it)
    ("a_b.c/x", "a_b.c/x:latest", "a_b.c/x", "latest"),  # no host after all: Docker names it with no domain
])
def test_parse(text, canonical, name, tag):
    assert refs.normalize(text) == canonical
    assert refs.split_tag(text) == (name, tag)


def test_same_image_different_spellings():
    assert len({refs.normalize(t) for t in ("basic-app", "basic-app:latest", "library/basic-app",
                                            "docker.io/library/basic-app:latest")}) == 1
    assert refs.normalize("basic-app:1") != refs.normalize("basic-app")


def test_digest():
    digest = "sha256:" + "a" * 64
    ref = refs.parse("app@" + digest)
    assert str(ref) == "docker.io/library/app@" + digest and ref.tag == ""


@pytest.mark.parametrize("text", ["", "app:", ":tag", "app:-x", "app name", "-app", "app/",
                                  "app:" + "x" * 129, "host:port/app", "app@sha256:short", None,
                                  # distribution/reference's grammar refuses these (they passed before)
                                  "a..b", "a___b", "-a/x", "a/-x", "a-/x", "x:1\n", "x\n", "x:1\n\n",
                                  "a" * 64, "app@sha256:" + "A" * 64, "app@md5:" + "a" * 32,
                                  "localhost:5000/App", "a/" + "b" * 254, "app:tag\u00e9", "[::1/x"])
def test_invalid(text):
    assert not refs.is_valid(text)
    if text is not None:
        assert refs.normalize(text) == text  # left as written: never matches a real output


def test_docker_hubs_other_names_are_docker_io():
    assert refs.normalize("index.docker.io/library/alpine") == refs.normalize("alpine")
    assert refs.normalize("registry-1.docker.io/lab/app:1") == refs.normalize("lab/app:1")


def test_the_path_may_have_255_characters():
    assert refs.is_valid("a/" + "b" * 253) and not refs.is_valid("a/" + "b" * 254)
    assert refs.is_valid("b" * 247)  # library/ + 247 = 255
    assert not refs.is_valid("b" * 248)


def test_other_digests_go_digest_knows():
    assert refs.is_valid("app@sha512:" + "a" * 128) and refs.is_valid("app:1@sha384:" + "0" * 96)
    assert not refs.is_valid("app@sha512:" + "a" * 64)


def test_what_may_be_an_image_id_is_never_looked_up_as_a_tag():
    """The engine takes `3f57d9401f8d` for an image id when no tag has that name: only it
    can answer, so such a reference is never looked up in a listing of tags."""
    for text in ("3f57d9401f8d", "sha256:3f57d9401f8d", "abc", "a" * 64):
        assert refs.may_be_image_id(text)
    for text in ("basic-app", "3f57d9401f8d:1", "lab/3f57d9401f8d", "a" * 65, "3F57D9401F8D", None):
        assert not refs.may_be_image_id(text)
