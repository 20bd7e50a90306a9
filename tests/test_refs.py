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


@pytest.mark.parametrize("text", ["", "Upper/app", "app:", ":tag", "app:-x", "app name", "-app", "app/",
                                  "app:" + "x" * 129, "host:port/app", "app@sha256:short", None])
def test_invalid(text):
    assert not refs.is_valid(text)
    if text is not None:
        assert refs.normalize(text) == text  # left as written: never matches a real output


def test_docker_hubs_other_names_are_docker_io():
    assert refs.normalize("index.docker.io/library/alpine") == refs.normalize("alpine")
    assert refs.normalize("registry-1.docker.io/lab/app:1") == refs.normalize("lab/app:1")
