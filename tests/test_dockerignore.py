"""tasks/dockerignore.context_files against the two other readers of .dockerignore:
the Docker SDK's `exclude_paths` (what `api.build` sends) and, for the truth, the
docker CLI itself (moby's patternmatcher), asked by a real build of the same tree."""
import os
import subprocess

import pytest

from tasks import dockerignore
from tasks.errors import StepFailed

TREE = [
    "Dockerfile", "a.txt", "b.txt", "ab.txt", "c.md", "abc.md", "x.log", "keep.log",
    "README", "abc", "xbc", "!bc", "^bc", "*.txt", "axb", "ab", "spaced.txt", "y.txt",
    "build/out.o", "build/keep.txt", "build/sub/deep.o",
    "docs/index.md", "docs/api/ref.md", "src/main.py", "src/build/gen.py", "src/cache/blob",
    "src/x.tmp", "a/b/c", "a/q/c", "a/b/z/w", "a/y/z/w", "x/y/z/w", "deep/er/x.log",
    "ax/b", "cache/one", "tmp.tmp", "sub/Dockerfile.app", "noext",
    "x.d/y", "x.d/z/w", "xd/y", "foo", "barfoo", "a/foo", "a/barfoo", "#keep.log",
]

# .dockerignore files on which the SDK and Docker agree
AGREE = [
    "*.log",
    "**/*.tmp",
    "*.log\n!keep.log",
    "build",
    "build/",
    "/build",
    "?.txt",
    "[ab].txt",
    "[a-c]*.md",
    "docs/**",
    "**/cache",
    "build\n!build/keep.txt",
    "build\n!*/keep.txt",
    "*\n!src",
    "*\n!src\nsrc/build",
    "a/*/c",
    "**",
    "# a comment\n\n  spaced.txt  \n",
    "./y.txt\nq/../ab.txt",
    "a**b",
    "x/y",
    "**/z",
    "a\n!a/b\na/b/z",
    "docs\n!docs/api/ref.md",
    "Dockerfile\n.dockerignore",
    "*.md\n!**/index.md",
    "*.d/**",
    "**/foo",
    "#keep.log",
]

# .dockerignore files the SDK reads differently from Docker, and what Docker sends
# instead of what the SDK sends (checked against the docker CLI in the engine test)
DIFFER = {
    "*.TXT": "the SDK ignores case; Docker does not",
    "[!a]bc": "Docker's class is a Go regexp: [!a] is `!` or `a`; the SDK negates",
    "[^a]bc": "Docker negates [^a]; the SDK reads ^ as a character",
    "\\*.txt": "Docker escapes with \\; the SDK has no escapes",
    "**.log": "Docker: a leading ** with no / is a suffix match (any path ending in .log)",
    "  #keep.log": "Docker: only a # in a line's first column starts a comment; the SDK trims first",
}


# The SDK ignores case: a file whose name differs only in case is in the trees of
# the DIFFER cases only.
UPPER = "A.TXT"


def make_tree(root, ignore_text):
    for relpath in TREE + [UPPER] * (ignore_text in DIFFER):
        path = os.path.join(root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write("FROM scratch\n" if relpath == "Dockerfile" else relpath + "\n")
    with open(os.path.join(root, ".dockerignore"), "w") as handle:
        handle.write(ignore_text + "\n")
    return str(root)


BUILD_FILES = {"Dockerfile", ".dockerignore"}


def ours(root):
    return dockerignore.context_files(root, always=tuple(BUILD_FILES))


def sdk(root):
    """What docker.api.build(path=root) would put in the context tar (files only)."""
    from docker.utils.build import exclude_paths

    with open(os.path.join(root, ".dockerignore")) as handle:
        patterns = [line.strip() for line in handle.read().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    kept = exclude_paths(root, patterns, dockerfile="Dockerfile")
    return sorted(p for p in kept if not os.path.isdir(os.path.join(root, p)) or os.path.islink(os.path.join(root, p)))


@pytest.mark.parametrize("ignore_text", AGREE)
def test_same_files_as_the_sdk(tmp_path, ignore_text):
    root = make_tree(tmp_path, ignore_text)
    assert ours(root) == sdk(root)


@pytest.mark.parametrize("ignore_text", sorted(DIFFER))
def test_sdk_differs_from_docker_here(tmp_path, ignore_text):
    """Guards the DIFFER list: if the SDK ever agrees, move the case to AGREE."""
    root = make_tree(tmp_path, ignore_text)
    assert ours(root) != sdk(root), DIFFER[ignore_text]


@pytest.mark.parametrize("ignore_text, excluded", [
    ("*.TXT", {"A.TXT"}),
    ("[!a]bc", {"abc", "!bc"}),
    ("[^a]bc", {"xbc", "!bc", "^bc"}),
    ("\\*.txt", {"*.txt"}),
    ("**.log", {"x.log", "keep.log", "deep/er/x.log", "#keep.log"}),
    ("  #keep.log", {"#keep.log"}),
])
def test_docker_semantics(tmp_path, ignore_text, excluded):
    root = make_tree(tmp_path, ignore_text)
    assert set(TREE + [UPPER]) - set(ours(root)) == excluded


@pytest.mark.parametrize("ignore_text, excluded", [
    ("*.d/**", {"x.d/y", "x.d/z/w"}),         # everything below a folder the * names
    ("**/foo", {"foo", "a/foo"}),             # foo at any depth, never barfoo
    ("#keep.log", set()),                     # a comment, not a pattern
    ("#keep.log\n*.log", {"x.log", "keep.log", "#keep.log"}),
])
def test_what_a_pattern_excludes(tmp_path, ignore_text, excluded):
    """The same cases are checked against the docker CLI (AGREE, engine test)."""
    root = make_tree(tmp_path, ignore_text)
    assert set(TREE) - set(ours(root)) == excluded


@pytest.mark.parametrize("ignore_text", ["!", "build\n!  ", "# only a comment\n!"])
def test_a_lone_exclamation_mark_is_refused(tmp_path, ignore_text):
    """As Docker does ("illegal exclusion pattern"), naming the file and line."""
    root = make_tree(tmp_path, ignore_text)
    line = len(ignore_text.split("\n"))
    with pytest.raises(StepFailed, match=r"\.dockerignore:%d: illegal exclusion pattern \"!\" \(Docker refuses it too\)$"
                       % line):
        ours(root)


@pytest.mark.engine
def test_docker_refuses_a_lone_exclamation_mark(tmp_path, docker_host, busybox_image):
    root = make_tree(tmp_path, "build\n!")
    with open(os.path.join(root, "Dockerfile"), "w") as handle:
        handle.write("FROM %s\n" % busybox_image)
    done = subprocess.run(["docker", "-H", docker_host, "build", "--rm", root], capture_output=True, text=True,
                          env=dict(os.environ, DOCKER_BUILDKIT="0"))
    assert done.returncode != 0 and 'illegal exclusion pattern: "!"' in done.stderr


def test_dockerfile_in_an_excluded_folder_is_still_sent(tmp_path):
    root = make_tree(tmp_path, "sub")
    files = dockerignore.context_files(root, always=("sub/Dockerfile.app", ".dockerignore"))
    assert "sub/Dockerfile.app" in files
    assert not any(f.startswith("build/") for f in ours(make_tree(tmp_path, "build")))


def test_an_always_sent_name_is_read_as_a_path(tmp_path):
    """`./Dockerfile` is the Dockerfile that `Dockerfile` excludes: it is still sent."""
    root = make_tree(tmp_path, "Dockerfile\nsub")
    files = dockerignore.context_files(root, always=("./Dockerfile", "sub//Dockerfile.app"))
    assert "Dockerfile" in files and "sub/Dockerfile.app" in files


def test_symlinked_folder_is_one_entry(tmp_path):
    root = make_tree(tmp_path, "*.log")
    os.symlink("docs", os.path.join(root, "linked"))
    assert "linked" in ours(root) and "linked/index.md" not in ours(root)
    assert ours(root) == sdk(root)


def test_byte_order_mark_is_not_part_of_the_first_pattern(tmp_path):
    root = make_tree(tmp_path, "")
    with open(os.path.join(root, ".dockerignore"), "w", encoding="utf-8-sig") as handle:
        handle.write("*.log\n")
    assert "x.log" not in ours(root)


def test_bad_pattern_is_a_clear_error(tmp_path):
    root = make_tree(tmp_path, "[abc")
    with pytest.raises(StepFailed, match=r"\.dockerignore:1: bad pattern '\[abc'"):
        ours(root)


def test_no_dockerignore_sends_everything(tmp_path):
    root = make_tree(tmp_path, "")
    os.unlink(os.path.join(root, ".dockerignore"))
    assert ours(root) == sorted(TREE)


@pytest.mark.engine
def test_same_files_as_the_docker_cli(tmp_path, docker_host, busybox_image, names):
    """The truth: the docker CLI (moby's own matcher) builds each tree; the image
    lists what it received. Ours must equal it for every case, SDK-agreeing or not."""
    failures = []
    for number, ignore_text in enumerate(AGREE + sorted(DIFFER)):
        root = make_tree(tmp_path / str(number), ignore_text)
        with open(os.path.join(root, "Dockerfile"), "w") as handle:
            handle.write("FROM %s\nCOPY . /ctx\nRUN busybox find /ctx ! -type d\n" % busybox_image)
        done = subprocess.run(
            ["docker", "-H", docker_host, "build", "--no-cache", "--rm", "-t", "%s/ignore:%d" % (names, number), root],
            capture_output=True, text=True, env=dict(os.environ, DOCKER_BUILDKIT="0"))
        assert done.returncode == 0, done.stderr
        sent = {line[len("/ctx/"):] for line in done.stdout.splitlines() if line.startswith("/ctx/")}
        # The daemon reads the Dockerfile and .dockerignore, then drops them from
        # the context when a pattern excludes them; they stay inputs of ours.
        sent |= BUILD_FILES
        if set(ours(root)) != sent:
            failures.append("%r: ours %s, docker %s" % (ignore_text, set(ours(root)) ^ sent, sorted(sent)))
    assert not failures, "\n".join(failures)


def test_a_pattern_that_is_not_utf8_matches_its_file_byte_for_byte(tmp_path):
    """Docker matches names and patterns as bytes: a Latin-1 pattern in .dockerignore
    excludes the Latin-1 file name it spells (test_hostile checks it against a build)."""
    root = make_tree(tmp_path, "")
    with open(os.path.join(root, ".dockerignore"), "wb") as handle:
        handle.write(b"caf\xe9.txt\n")
    for name in (b"caf\xe9.txt", b"caf\xe8.txt"):
        with open(os.path.join(os.fsencode(root), name), "wb") as handle:
            handle.write(b"x")
    kept = [os.fsencode(name) for name in ours(root)]
    assert b"caf\xe8.txt" in kept and b"caf\xe9.txt" not in kept
