"""Property tests (hypothesis) over what a workflow author, a command line or a file on
disk can hand dockflow: workflow documents valid and broken, `name=value`s, image
references, .dockerignore patterns, cron schedules, and save tars. Each input must be
taken or refused in one line naming where (file:line, exit 3), never a traceback, and
within a memory bound.

Two profiles: "ci" (the default, well under a minute) and "long", for a run by hand:

    DOCKFLOW_FUZZ=long python3 -m pytest -q tests/test_fuzz.py

A failure prints the smallest input found and how to replay it (@reproduce_failure).
"""
import io
import json
import os
import re
import resource
import subprocess
import sys
import tarfile
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks import dockerignore, files, imagetar, project_checks, refs, workflow
from tasks.errors import StepFailed, WorkflowError
from tasks.schedule import CronExpression
from tests.conftest import REPO

# No example database: nothing is written into the work tree; a failure prints its input.
_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("ci", max_examples=60, derandomize=True, **_COMMON)  # the same inputs on every run
settings.register_profile("long", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("DOCKFLOW_FUZZ", "ci"))

MEMORY_BOUND = 64 << 20  # bytes one load may allocate at its peak (the alias bomb took 3.6 GB)
PROBLEM_RE = re.compile(r"workflows/x\.yaml:[0-9]+:[0-9]+: \S")


def schema_words():
    """Every kind and field name the schema knows: generated keys hit real fields often."""
    words = set()

    def walk(node):
        if isinstance(node, dict):
            words.update(k for k in node.get("properties", {}))
            words.update(v for v in node.get("enum", []) if isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(workflow._read_schema()))
    return sorted(words)


WORDS = schema_words()
KINDS = json.loads(workflow._read_schema())["$defs"]["step"]["properties"]["kind"]["enum"]
NASTY = ["", " ", "\n", "\t", "\x00", "\x1b[2J", "\u202e", "\ud800", "\ufeff", "-oProxyCommand=x", "${v}", "$${v}",
         "${", "../../etc/passwd", "/etc/passwd", "lab/app:1", "a..b", "[::1]:5000/x", "x:1\n", "30 3 * * *",
         "@daily", "61 3 * * *", "ssh://-oProxyCommand=x@h", "tcp://[::1", "unix:///nonexistent", "7d", "2w",
         "yes", "~", "2001-01-01", "0x1f", "1e400", ".nan", "&a", "*a", "<<", "!!python/object:os.system"]
texts = st.one_of(st.sampled_from(NASTY), st.sampled_from(WORDS), st.text(max_size=12),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=6))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
keys = st.one_of(st.sampled_from(WORDS), texts, st.integers(), st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)
steps = st.fixed_dictionaries({"kind": st.one_of(st.sampled_from(KINDS), scalars)},
                              optional={w: values for w in ("image", "tags", "source", "context", "tar",
                                                            "destinations", "docker_host", "schedule", "args")})
documents = st.fixed_dictionaries(
    {"steps": st.one_of(st.dictionaries(st.one_of(st.sampled_from(["build_app", "t", "prune"]), keys), steps,
                                        min_size=1, max_size=3), values)},
    optional={"vars": st.dictionaries(keys, values, max_size=3), "version": scalars, "doc": scalars})


@st.composite
def yaml_texts(draw):
    """A document written as YAML, then maybe broken as text: cut, spliced with
    anchors and aliases, nested deep, or given bytes that are not UTF-8."""
    document = draw(st.one_of(documents, values))
    text = yaml.safe_dump(document, allow_unicode=draw(st.booleans()),
                          default_flow_style=draw(st.sampled_from([None, True, False])))
    raw = text.encode("utf-8", "surrogatepass")
    how = draw(st.sampled_from(["as is", "as is", "cut", "splice", "aliases", "deep", "bytes"]))
    if how == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif how == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(NASTY)).encode("utf-8", "surrogatepass") + raw[at:]
    elif how == "aliases":
        levels, width = draw(st.integers(1, 9)), draw(st.integers(1, 12))
        lines = ["  a0: &a0 [x]"] + ["  a%d: &a%d [%s]" % (n, n, ",".join(["*a%d" % (n - 1)] * width))
                                    for n in range(1, levels + 1)]
        if draw(st.booleans()):
            lines.append("  self: &self [*self]")
        raw = ("vars:\n" + "\n".join(lines) + "\n").encode() + raw
    elif how == "deep":
        depth = draw(st.integers(1, 3000))
        raw = raw + ("deep: " + "[" * depth + "]" * depth + "\n").encode()
    elif how == "bytes":
        raw = draw(st.binary(max_size=200))
    return raw


def write_project(root, raw):
    os.makedirs(os.path.join(root, "workflows"), exist_ok=True)
    with open(os.path.join(root, "workflows", "x.yaml"), "wb") as handle:
        handle.write(raw)


def assert_one_line_each(problems):
    for problem in problems:
        assert "\n" not in problem and problem.isprintable(), problem
        assert len(problem) < 1500, problem[:300]
        problem.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogate


def load_bounded(root, override=None, given_values=None):
    """project_checks.checked_steps on the project, as `doit list` does, with its peak memory:
    (steps or None, problems)."""
    tracemalloc.start()
    try:
        return project_checks.checked_steps(root, override, given_values), []
    except WorkflowError as err:
        return None, err.problems
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, "one load took %d MB" % (peak >> 20)


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A project folder; messages name workflows/x.yaml; no engine is ever reached."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setattr(files, "_user_secret", {"secret": b"f" * files.SECRET_BYTES})
    return str(tmp_path)


@given(raw=yaml_texts())
@example(raw=b"steps:\n  ? [a]\n  : {kind: tag}\n")
@example(raw=b"steps: {t: {kind: build, image: a, context: ., args: {2001-01-01: x}}}\n")
@example(raw=b"steps:\n  t: &t {kind: tag, source: a, tags: [b]}\n  u: {<<: *t, tags: [c]}\n")
def test_a_workflow_loads_or_is_refused_in_lines_naming_where(project_dir, raw):
    write_project(project_dir, raw)
    loaded, problems = load_bounded(project_dir)
    assert_one_line_each(problems)
    for problem in problems:
        assert PROBLEM_RE.match(problem), problem
    for step in (loaded[0] if loaded else {}).values():
        assert PROBLEM_RE.match(step.where())
        try:
            step.expanded_definition()
        except StepFailed as err:
            assert_one_line_each([str(err)])


names = st.one_of(st.sampled_from(["v", "image", "t", "dry_run", "x y", "", "-v"]), texts)


@given(given_values=st.dictionaries(names, texts, max_size=3))
@example(given_values={"t": "lab/app:1\n"})
@example(given_values={"v": "\x1b[2J"})
def test_command_line_values_are_taken_or_refused_in_lines(project_dir, given_values):
    """`doit STEP name=value`: an undeclared name, or a value that makes a reference or a
    path invalid, is one line; the override reaches every place a variable is used."""
    write_project(project_dir, b"vars:\n  t: lab/app:1\n  v: {value: '1', semver: false}\n"
                               b"steps:\n  retag: {kind: tag, source: lab/app, tags: ['${t}']}\n"
                               b"  send: {kind: transfer, tar: '../app-${v}.tar', destinations: [../out/]}\n")
    loaded, problems = load_bounded(project_dir, given_values.get, given_values)
    assert_one_line_each(problems)
    for problem in problems:
        assert PROBLEM_RE.match(problem) or problem.startswith("command line: "), problem


@settings(max_examples=max(3, settings().max_examples // 12))
@given(raw=yaml_texts())
@example(raw=b"vars:\n  a: &a [*a]\nsteps: {t: {kind: tag, source: a, tags: [b]}}\n")
def test_doit_validate_says_ok_or_exit_3_with_lines(tmp_path_factory, raw):
    """The same through `doit validate` in a subprocess under a 1 GB address-space limit."""
    root = str(tmp_path_factory.mktemp("validate"))
    write_project(root, raw)
    with open(os.path.join(root, "dodo.py"), "w") as handle:
        handle.write("from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401\n")

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    done = subprocess.run([sys.executable, "-m", "doit", "validate"], cwd=root, capture_output=True, text=True,
                          preexec_fn=limit_memory, env=dict(os.environ, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1",
                                                            DOCKER_HOST="unix:///nonexistent/docker.sock"))
    output = done.stdout + done.stderr
    assert done.returncode in (0, 3) and "Traceback" not in output, output[-3000:]
    if done.returncode == 3:
        lines = [line.strip() for line in output.splitlines() if "workflows/x.yaml" in line]
        assert lines and all(PROBLEM_RE.match(line) for line in lines), output[-3000:]


# --- image references against distribution/reference's grammar -------------------
class Grammar:
    """distribution/reference's regexp.go and ParseNormalizedNamed (normalize.go, Parse in
    reference.go), written out again here from the Go source, apart from tasks/refs.py,
    to judge it. Go's `$` is the end of the text; its `\\w` is ASCII."""
    alphanumeric = r"[a-z0-9]+"
    separator = r"(?:[._]|__|[-]+)"
    domain_name_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    optional_port = r"(?::[0-9]+)?"
    tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
    ipv6address = r"\[(?:[a-fA-F0-9:]+)\]"
    domain_name = domain_name_component + r"(?:\." + domain_name_component + r")*"
    host = r"(?:" + domain_name + r"|" + ipv6address + r")"
    domain_and_port = host + optional_port
    path_component = alphanumeric + r"(?:" + separator + alphanumeric + r")*"
    remote_name = path_component + r"(?:/" + path_component + r")*"
    name = r"(?:" + domain_and_port + r"/)?" + remote_name
    reference = re.compile(r"^(" + name + r")(?::(" + tag + r"))?(?:@(" + digest + r"))?\Z")
    anchored_name = re.compile(r"^(?:(" + domain_and_port + r")/)?(" + remote_name + r")\Z")

    @classmethod
    def parse_normalized_named(cls, text):
        """(domain, path, tag, digest) or None, as Docker parses a familiar name."""
        if re.fullmatch(r"[a-f0-9]{64}", text):
            return None
        domain, remainder = cls.split_docker_domain(text)
        remote = remainder.split(":", 1)[0]
        if remote.lower() != remote:
            return None
        match = cls.reference.match(domain + "/" + remainder)
        if not match:
            return None
        name_match = cls.anchored_name.match(match.group(1))
        domain, path = name_match.group(1) or "", name_match.group(2)
        if len(path) > 255:
            return None
        digest = match.group(3)
        if digest:  # go-digest: a known algorithm and its length, lower-case hex
            algorithm, _, encoded = digest.partition(":")
            lengths = {"sha256": 64, "sha384": 96, "sha512": 128}
            if algorithm not in lengths or len(encoded) != lengths[algorithm] or encoded != encoded.lower():
                return None
        return domain, path, match.group(2) or "", digest or ""

    @staticmethod
    def split_docker_domain(text):
        maybe_domain, slash, maybe_remote = text.partition("/")
        if not slash:
            return "docker.io", "library/" + text
        if maybe_domain == "localhost" or maybe_domain != maybe_domain.lower() \
                or any(c in maybe_domain for c in ".:") or maybe_domain == "index.docker.io":
            domain, remote = ("docker.io" if maybe_domain == "index.docker.io" else maybe_domain), maybe_remote
        else:
            domain, remote = "docker.io", text
        if domain == "docker.io" and "/" not in remote:
            remote = "library/" + remote
        return domain, remote


reference_like = st.one_of(
    st.text(alphabet="ab0:/.-_@[]AZ\n ", max_size=24),
    st.from_regex(Grammar.reference, fullmatch=True).map(lambda r: r[:300]),
    st.builds(lambda a, b: a + b, st.from_regex(Grammar.reference, fullmatch=True), st.sampled_from(NASTY)),
    st.sampled_from(["a..b", "a___b", "-a/x", "[::1]:5000/x", "Upper/app", "a_b.c/x", "x:1\n", "a" * 64,
                     "app@sha256:" + "a" * 64, "localhost:5000/x:1", "index.docker.io/x", "a/" + "b" * 254]))


@given(text=reference_like)
def test_image_references_follow_distribution_reference(text):
    expected = Grammar.parse_normalized_named(text)
    parsed = refs.parse(text)
    assert (parsed is not None) == (expected is not None), (text, expected)
    if parsed is None:
        assert refs.normalize(text) == text
        return
    domain, path, tag, digest = expected
    if domain == "registry-1.docker.io":
        domain = "docker.io"  # ours: Docker Hub's registry under its own name is Docker Hub
    assert (parsed.registry, parsed.repository, parsed.digest or "") == (domain, path, digest)
    assert parsed.tag == (tag or ("" if digest else "latest"))
    assert refs.normalize(refs.normalize(text)) == refs.normalize(text)


# --- .dockerignore ----------------------------------------------------------------
pattern_lines = st.one_of(st.sampled_from(["*", "**", "!", "!a", "[", "[]", "[^", "\\", "a\\", "**/", "/", "../x",
                                           "#c", "a/**/b", "[a-", "?", "*.txt", "!*.txt", "[!a]b", "\x00"]),
                          st.text(alphabet="ab*?[]^!\\/.-# \t", max_size=10))


@given(lines=st.lists(pattern_lines, max_size=6), latin1=st.booleans())
def test_a_dockerignore_is_read_or_refused_in_one_line(tmp_path_factory, lines, latin1):
    """Any .dockerignore: the files to send, or StepFailed in one line, never another error."""
    context = str(tmp_path_factory.mktemp("context"))
    for name in ("Dockerfile", "a.txt", "b/c.txt", "b/d/e", "caf\u00e9"):
        os.makedirs(os.path.dirname(os.path.join(context, name)), exist_ok=True)
        with open(os.path.join(context, name), "w") as handle:
            handle.write("x\n")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(context, ".dockerignore"), "wb") as handle:
        handle.write(text.encode("latin-1", "replace") if latin1 else text.encode("utf-8", "surrogatepass"))
    try:
        sent = dockerignore.context_files(context, always=("Dockerfile", ".dockerignore"))
    except StepFailed as err:
        assert_one_line_each([str(err).replace(context, "CONTEXT")])
        return
    assert {"Dockerfile", ".dockerignore"} <= set(sent)
    assert all(os.path.lexists(os.path.join(context, p)) for p in sent)


# --- cron schedules (tasks/schedule.py) ---------------------------------------------
cron_fields = st.one_of(st.sampled_from(["*", "*/5", "0", "7", "1-5", "mon-fri", "jan", "5/10", "*/0", "60", "-1",
                                         "1-", ",", "sun,sat", "٣", "monday", "L", "?"]),
                        st.text(alphabet="0123456789*/-,abcjmnostu", min_size=1, max_size=6))
cron_texts = st.one_of(st.lists(cron_fields, min_size=5, max_size=5).map(" ".join),
                       st.lists(cron_fields, max_size=7).map(" ".join),
                       st.sampled_from(["@daily", "@reboot", "@hourly ", "", "\n", "30 3 * * *\n"]), st.text(max_size=20))
LIMITS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


@given(text=cron_texts)
@example(text="0 0 1 1 mon/2")
def test_a_schedule_is_parsed_or_refused_with_a_value_error(text):
    """Never another exception; what is taken lies within each field's range and makes
    OnCalendar values."""
    try:
        expression = CronExpression(text)
    except ValueError as err:
        assert_one_line_each([str(err)[:1400]])
        return
    for values, (low, high) in zip(expression.fields, LIMITS):
        assert values is None or (values and all(low <= v <= high for v in values))
    for calendar in expression.on_calendar():
        assert calendar.isprintable()


@given(text=st.sampled_from(["0 0 * * monday", "0 0 * * MONx", "0 0 1 1 mon/2", "5/10 * * * *"]))
def test_a_schedule_cron_refuses_or_reads_as_one_value_is_not_stretched(text):
    """Vixie cron's get_number compares a whole word with the three-letter names, and its
    get_range ends at a single number: `/step` applies to `*` and to ranges only. (These
    four were stretched before: `monday` taken for mon, `mon/2` for mon,wed,fri,sun.)"""
    try:
        expression = CronExpression(text)
    except ValueError:
        return
    assert all(values is None or len(values) == 1 for values in expression.fields)


# --- save tars (tasks/imagetar.py) ---------------------------------------------------
def save_tar(layers=1):
    """A small tar in `docker save`'s layout: manifest.json, a config, layer tars."""
    buffer = io.BytesIO()
    layer_paths, diff_ids = [], []
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for number in range(layers):
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w") as inner:
                info = tarfile.TarInfo("file%d" % number)
                inner.addfile(info, io.BytesIO(b""))
            folder = "%064x" % (number + 1)
            add(folder + "/layer.tar", layer.getvalue())
            layer_paths.append(folder + "/layer.tar")
            diff_ids.append("sha256:%064x" % (number + 100))
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        add("%064x.json" % 7, config)
        add("manifest.json", json.dumps([{"Config": "%064x.json" % 7, "RepoTags": ["lab/app:1"],
                                          "Layers": layer_paths}]).encode())
    return buffer.getvalue()


@st.composite
def damaged_tars(draw):
    raw = save_tar(draw(st.integers(1, 3)))
    how = draw(st.sampled_from(["cut", "flip", "reorder", "oversize", "manifest"]))
    if how == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif how == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1:]
    elif how == "reorder":
        blocks = [raw[i:i + 512] for i in range(0, len(raw), 512)]
        raw = b"".join(draw(st.permutations(blocks)))
    elif how == "oversize":  # a member header claiming more bytes than the file holds
        members = tarfile.open(fileobj=io.BytesIO(raw)).getmembers()
        member = draw(st.sampled_from(members))
        header = bytearray(raw[member.offset:member.offset + 512])
        header[124:136] = b"%011o\0" % draw(st.integers(1 << 20, (1 << 33) - 1))
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
        raw = raw[:member.offset] + bytes(header) + raw[member.offset + 512:]
    else:
        manifest = draw(st.one_of(values, st.lists(st.dictionaries(st.sampled_from(["Config", "RepoTags", "Layers"]),
                                                                       values, max_size=3), max_size=2)))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=io.BytesIO(raw)) as source, tarfile.open(fileobj=buffer, mode="w") as archive:
            for member in source.getmembers():
                data = source.extractfile(member).read()
                if member.name == "manifest.json":
                    data = json.dumps(manifest).encode()
                    member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
        raw = buffer.getvalue()
    return raw


def tar_of(members):
    """A tar of {name: bytes, or None for a folder}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            archive.addfile(info, None if data is None else io.BytesIO(data))
    return buffer.getvalue()


def manifest(**entry):
    return json.dumps([dict({"Config": "c.json", "Layers": []}, **entry)]).encode()


# Found by this test: each one was a traceback before imagetar's rewrite for the newer layouts.
TAR_TRACEBACKS = [
    tar_of({"manifest.json": None}),                                      # AttributeError: a folder
    tar_of({"c.json": None, "manifest.json": manifest()}),               # AttributeError: a folder
    tar_of({"c.json": b'{"rootfs": {"diff_ids": 5}}', "manifest.json": manifest()}),        # TypeError
    tar_of({"c.json": b'{"rootfs": {"diff_ids": ["a"]}}', "manifest.json": manifest(Layers=[5])}),  # TypeError
    tar_of({"manifest.json": b"[" * 100000 + b"]" * 100000}),             # RecursionError
]


# A damaged tar of 80 kB makes hypothesis warn that its repr is large: no failure of ours.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@given(raw=damaged_tars())
@example(raw=b"")
@example(raw=TAR_TRACEBACKS[0])
@example(raw=TAR_TRACEBACKS[1])
@example(raw=TAR_TRACEBACKS[2])
@example(raw=TAR_TRACEBACKS[3])
@example(raw=TAR_TRACEBACKS[4])
def test_a_damaged_save_tar_is_a_step_failure(tmp_path_factory, raw):
    path = str(tmp_path_factory.mktemp("tar") / "app.tar")
    with open(path, "wb") as handle:
        handle.write(raw)
    try:
        image_tar = imagetar.ImageTar(path)
        image_tar.image_ids()
        image_tar.layer_chains()
        image_tar.ranges_without({"%064x" % 1})
    except StepFailed as err:
        assert_one_line_each([str(err)])

