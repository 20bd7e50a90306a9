"""Hostile workflows and faults (issue 12). Each test feeds what a cloned repository,
a shared folder or a command line can hold, and wants one line naming file:line
(exit 3 for a definition, 1 at run time): never a traceback, a crash, memory without
bound, or a file written where the workflow a reviewer reads writes none. The probes
that would run a command plant a marker file's name in it and check that the marker
never appears."""
import hashlib
import json
import os
import resource
import stat
import subprocess
import sys

import pytest

from tasks import files, ssh, workflow
from tasks.errors import StepFailed, WorkflowError
from tests.conftest import REPO
from tests.support import image_id


def definition_error(done):
    """The problem lines of a `doit` run that must fail as a definition error."""
    assert done.returncode == 3, done.output
    assert "Traceback" not in done.output, done.output
    return [line.strip() for line in done.output.splitlines() if line.startswith("  ")]


def run_failure(done):
    assert done.returncode == 1, done.output
    assert "Traceback" not in done.output, done.output
    return done.output


@pytest.fixture
def load(tmp_path, monkeypatch):
    """Load workflow text (str or bytes) as workflows/x.yaml; messages name that path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows").mkdir()

    def load_text(text, name="x.yaml"):
        path = tmp_path / "workflows" / name
        raw = text if isinstance(text, bytes) else text.encode()
        if not path.exists() or path.read_bytes() != raw:  # unchanged: keep its time, as an editor would
            path.write_bytes(raw)
        return workflow.load_file(str(path), str(tmp_path / ".dockflow" / "cache"))
    return load_text


def problems_of(load, text):
    with pytest.raises(WorkflowError) as caught:
        load(text)
    return caught.value.problems


TAG_STEP = "steps:\n  t: {kind: tag, source: a, tags: [b]}\n"


# --- 1. YAML alias bomb, deep nesting ------------------------------------------
def alias_bomb(levels, width=9):
    """`vars:` holding `levels` lists of `width` aliases to the one before: width**levels values."""
    lines = ["vars:", "  l0: &l0 [%s]" % ",".join(["x"] * width)]
    for level in range(1, levels + 1):
        lines.append("  l%d: &l%d [%s]" % (level, level, ",".join(["*l%d" % (level - 1)] * width)))
    return "\n".join(lines) + "\n" + TAG_STEP


def test_an_alias_bomb_is_one_line_within_bounded_memory(offline_project):
    """Nine levels (about 500 bytes) took 100 s and 3.6 GB before a MemoryError traceback.
    Under a 1 GB address-space limit `doit list` must say where, and nothing else."""
    offline_project.workflow(alias_bomb(9))

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    done = subprocess.run(offline_project._doit_argv(["list"]), cwd=offline_project.root,
                          env=offline_project._doit_env(None), capture_output=True, text=True,
                          preexec_fn=limit_memory)
    done.output = done.stdout + done.stderr
    assert definition_error(done) == [
        "workflows/flow.yaml:6:12: YAML: aliases here repeat more than 10000 values in all (at *l3): "
        "write the values out"]


def test_aliases_within_the_limit_still_load(load):
    """Anchors are YAML; a workflow may share a value. `<<` merges a mapping."""
    flow = load("vars:\n  base: &b lab/busybox:1.35\n  again: *b\n"
                "steps:\n  t: &t {kind: tag, source: '${base}', tags: [b]}\n  u: {<<: *t, tags: [c]}\n")
    assert flow.variables.get("again") == "lab/busybox:1.35"
    assert flow.steps["u"].get("tags") == ["c"] and flow.steps["u"].get("source") == "lab/busybox:1.35"


def test_an_alias_inside_the_value_it_names_is_refused(load):
    """`&a [*a]` is a list holding itself: walking it never ended (RecursionError)."""
    assert problems_of(load, "vars:\n  a: &a [*a]\n" + TAG_STEP) == [
        "workflows/x.yaml:2:10: YAML: the alias *a stands inside the value it names"]


@pytest.mark.parametrize("depth", [60, 5000, 200000])
def test_deep_nesting_is_refused_before_libyaml_recurses(tmp_path, depth):
    """200,000 levels crashed the interpreter in libyaml (SIGSEGV); 5,000 gave a
    RecursionError traceback. A subprocess: a crash must not take pytest with it."""
    path = tmp_path / "deep.yaml"
    path.write_text("vars:\n  a: " + "[" * depth + "]" * depth + "\n" + TAG_STEP)
    probe = ("import sys\nfrom tasks import workflow\ntry:\n    workflow.load_file(sys.argv[1], sys.argv[2])\n"
             "except workflow.WorkflowError as err:\n    print(err.problems)\n")
    done = subprocess.run([sys.executable, "-c", probe, str(path), str(tmp_path / "cache")], cwd=tmp_path,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr[-2000:]
    # where: the 51st level, or where libyaml itself stops (1,000 levels, libyaml 0.2.5+ as PyYAML 6.0.4's
    # wheels bundle it) when its scanner reads that far ahead of the events
    assert done.stdout.strip() in (str(["deep.yaml:2:54: YAML: more than 50 levels of nesting"]),
                                   str(["deep.yaml:2:1004: YAML: more than 50 levels of nesting"])), done.stdout


def test_a_long_value_is_quoted_short(load):
    """A value is quoted in a message cut to a few hundred characters: the alias bomb of
    seven levels printed 39 MB of error text."""
    (problem,) = problems_of(load, "steps:\n  t: {kind: tag, source: a, tags: [b], doc: [%s]}\n"
                             % ",".join(["long-value-%d" % n for n in range(5000)]))
    assert problem.startswith("workflows/x.yaml:2:40: steps.t.doc: ['long-value-0', ")
    assert problem.endswith(" is not of type 'string'") and len(problem) < 400


def test_a_key_is_shown_on_one_line(load):
    """A key holding a newline or a terminal escape would break the one-line message or
    drive the terminal."""
    (problem,) = problems_of(load, 'steps:\n  t: {kind: tag, source: a, tags: [b], "x\\n\\u001b[2J": 1}\n')
    assert problem == "workflows/x.yaml:2:40: steps.t.x\\n\\x1b[2J: unknown field"


# --- 3. the parse cache is no second source of truth ----------------------------
def forged_entry(project_dir, yaml_name, document):
    """A cache entry as anyone could write it before: named by the sha256 of public bytes."""
    with open(os.path.join(project_dir, "workflows", yaml_name), "rb") as handle:
        raw = handle.read()
    with open(workflow.SCHEMA_PATH, "rb") as handle:
        schema_raw = handle.read()
    key = hashlib.sha256(b"dockflow-cache-2" + schema_raw + raw).hexdigest()
    cache_dir = os.path.join(project_dir, ".dockflow", "cache")
    os.makedirs(cache_dir, exist_ok=True)
    marks = {"": [1, 1], "steps": [1, 1], "steps\x1fsend": [2, 3]}
    with open(os.path.join(cache_dir, "%s-%s.json" % (yaml_name, key)), "w") as handle:
        json.dump({"document": document, "marks": marks}, handle)


def test_a_cache_entry_shipped_with_a_project_is_never_taken(offline_project, tmp_path):
    """The YAML a reviewer reads copies a file into out/; the shipped cache entry said to
    write the attacker's file (the marker) instead, and the run did."""
    offline_project.write("app.tar", "not really a tar\n")
    offline_project.workflow("steps:\n  send: {kind: transfer, tar: ../app.tar, destinations: [../out/]}\n")
    marker = str(tmp_path / "marker")
    forged_entry(offline_project.root, "flow.yaml", {"steps": {"send": {
        "kind": "transfer", "tar": "../app.tar", "destinations": [marker]}}})
    done = offline_project.doit("send")
    assert done.returncode == 0, done.output
    assert not os.path.exists(marker), "the shipped cache entry was obeyed"
    assert os.path.isfile(offline_project.path("out/app.tar"))


@pytest.fixture
def secret(monkeypatch):
    """files.user_secret() answers what the test sets (the real one is left alone)."""
    holder = {"secret": b"s" * files.SECRET_BYTES}
    monkeypatch.setattr(files, "_user_secret", holder)
    return holder


@pytest.fixture
def parses(monkeypatch):
    """How many times load_file really parsed (a cache miss)."""
    calls = []
    real = workflow._parse_and_check
    monkeypatch.setattr(workflow, "_parse_and_check", lambda *args: calls.append(1) or real(*args))
    return calls


def test_an_entry_sealed_with_another_secret_is_parsed_again(load, secret, parses):
    """Another user of a shared folder (another secret) cannot write an entry we take."""
    load(TAG_STEP)
    load(TAG_STEP)
    assert len(parses) == 1
    secret["secret"] = b"t" * files.SECRET_BYTES
    load(TAG_STEP)
    assert len(parses) == 2


def test_an_entry_changed_in_place_is_parsed_again(load, secret, parses, tmp_path):
    """Its name is known to whoever can list the folder: its content is sealed too."""
    load(TAG_STEP)
    (entry,) = (tmp_path / ".dockflow" / "cache").iterdir()
    seal, body = entry.read_bytes().split(b"\n", 1)
    entry.write_bytes(seal + b"\n" + body.replace(b'"b"', b'"evil"'))
    assert load(TAG_STEP).steps["t"].get("tags") == ["b"]
    assert len(parses) == 2


def test_an_entry_older_than_its_file_is_parsed_again(load, secret, parses, tmp_path):
    load(TAG_STEP)
    (entry,) = (tmp_path / ".dockflow" / "cache").iterdir()
    os.utime(entry, (1, 1))
    load(TAG_STEP)
    assert len(parses) == 2


def test_without_a_secret_nothing_is_cached(load, secret, parses, tmp_path):
    """A home folder that cannot be written: every load parses, and that is all."""
    secret["secret"] = None
    load(TAG_STEP)
    load(TAG_STEP)
    assert len(parses) == 2 and not (tmp_path / ".dockflow" / "cache").exists()


def test_the_secret_is_private_and_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(files, "_user_secret", {})
    made = files.user_secret()
    path = tmp_path / "dockflow" / "secret"
    assert len(made) == files.SECRET_BYTES and path.read_bytes() == made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setattr(files, "_user_secret", {})
    assert files.user_secret() == made
    path.chmod(0o644)  # readable by others: no secret, so no cache rather than a guessable one
    monkeypatch.setattr(files, "_user_secret", {})
    assert files.user_secret() is None


# --- 4. ssh option injection ------------------------------------------------------
@pytest.mark.parametrize("user, host", [("-oProxyCommand=touch pwned", "h"), (None, "-oProxyCommand=x"),
                                        ("u", "-F/tmp/conf"), ("u\nx", "h"), (None, "")])
def test_ssh_refuses_a_host_or_user_it_would_read_as_an_option(user, host):
    with pytest.raises(StepFailed, match="refused"):
        ssh.Remote(host, user)


def test_ssh_and_its_tunnel_put_the_destination_after_dashes(monkeypatch):
    """Even a valid name goes after `--`: nothing after it is an option to ssh."""
    assert ssh.Remote("h", "u").command("ls", "-l")[-3:] == ["--", "u@h", "ls -l"]
    started = []

    class NoSsh(Exception):
        pass

    def popen(argv, **options):
        started.append(argv)
        raise NoSsh
    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(NoSsh):
        ssh.tunnel("ssh://u@h:2222", None, ".", "/var/run/docker.sock")
    assert started[0][-2:] == ["--", "u@h"]
    with pytest.raises(StepFailed, match="refused"):
        ssh.tunnel("ssh://-oProxyCommand=x@h", None, ".", "/var/run/docker.sock")
    assert len(started) == 1


@pytest.mark.parametrize("address", ["ssh://[::1", "ssh://h:99999"])
def test_a_broken_ssh_address_is_one_failure(address):
    with pytest.raises(StepFailed, match="not an ssh://"):
        ssh.tunnel(address, None, ".", "/var/run/docker.sock")


def pwned_files(project):
    return [name for name in os.listdir(project.root) if name.startswith("pwned")]


def test_a_transfer_destination_never_reaches_ssh_as_an_option(offline_project):
    """`-oProxyCommand=touch${IFS}pwned@h:/p/` made ssh run `touch pwned@h`, in `doit plan`
    too; here only OpenSSH 9.2's own host-name check stopped it. The marker: pwned@h."""
    offline_project.write("app.tar", "x\n")
    offline_project.workflow("steps:\n  send: {kind: transfer, tar: ../app.tar, "
                             "destinations: [\"-oProxyCommand=touch$${IFS}pwned@h:/p/\"]}\n")
    output = run_failure(offline_project.doit("send"))
    assert "ssh user '-oProxyCommand=touch${IFS}pwned' refused" in output
    assert pwned_files(offline_project) == []


@pytest.mark.engine
def test_an_ssh_docker_host_never_reaches_ssh_as_an_option(project, busybox_image):
    subprocess.run(["docker", "-H", project.docker_host, "save", "-o", project.path("app.tar"), busybox_image],
                   check=True)
    project.workflow("steps:\n  ship: {kind: load, tar: ../app.tar, "
                     "docker_host: \"ssh://-oProxyCommand=touch$${IFS}pwned@h\"}\n")
    output = run_failure(project.doit("ship"))
    assert "ssh user '-oProxyCommand=touch${IFS}pwned' refused" in output
    assert pwned_files(project) == []


# --- 5. a trailing newline passes no check --------------------------------------
def test_a_step_name_ending_in_a_newline_is_refused(load):
    """Python's `$` matched before a final newline: "prune\\n" passed the schema and
    then corrupted a crontab and a systemd unit."""
    (problem,) = problems_of(load, 'steps:\n  "prune\\n": {kind: prune}\n')
    assert problem.startswith("workflows/x.yaml:2:3: steps.'prune\\n': 'prune\\n' does not match")


@pytest.mark.engine
def test_a_tag_ending_in_a_newline_never_moves_a_version_tag(project, docker_cli, busybox_image, names):
    """`doit retag t=NAME:1\\n` moved NAME:1 to another image without force, where
    `t=NAME:1` was refused."""
    other = "%s/other:1" % names
    version = "%s/app:1" % names
    docker_cli("tag", busybox_image, version)
    docker_cli("build", "-q", "-t", other, "-", input="FROM %s\nLABEL other=1\n" % busybox_image)
    project.workflow("vars:\n  t: %s\nsteps:\n  retag: {kind: tag, source: %s, tags: ['${t}']}\n" % (version, other))
    before = image_id(docker_cli, version)
    refused = project.doit("retag", "t=%s" % version)
    assert refused.returncode != 0 and "Traceback" not in refused.output
    lines = definition_error(project.doit("retag", "t=%s\n" % version))
    assert any("is not a valid image reference" in line for line in lines), lines
    assert image_id(docker_cli, version) == before


# --- 7. temp files follow no planted link ----------------------------------------
def test_a_symlink_planted_at_the_pid_named_temp_file_is_not_followed(tmp_path):
    """`.NAME.partial-PID` was opened without O_EXCL: a link planted there for the running
    pid sent a root write into the victim file."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / (".app.tar.partial-%d" % os.getpid()))
    files.write_atomic(str(tmp_path / "app.tar"), b"image\n")
    assert victim.read_text() == "precious\n"
    assert (tmp_path / "app.tar").read_bytes() == b"image\n"


def test_a_temp_name_taken_by_a_link_is_passed_over(tmp_path, monkeypatch):
    """Even the random name, if someone got it first: O_EXCL refuses it, another is drawn."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    suffixes = iter(["planted", "planted", "ours"])
    monkeypatch.setattr(files, "_random_suffix", lambda: next(suffixes))
    os.symlink(victim, tmp_path / (".app.tar.partial-%d-planted" % os.getpid()))
    with files.atomic_writer(str(tmp_path / "app.tar")) as handle:
        assert handle.name.endswith("-ours")
        handle.write(b"image\n")
    assert victim.read_text() == "precious\n" and (tmp_path / "app.tar").read_bytes() == b"image\n"


def test_a_temp_file_keeps_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        files.write_atomic(str(tmp_path / "app.tar"), b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "app.tar").stat().st_mode) == 0o640


def test_dead_writers_temp_files_of_both_namings_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    old_style = tmp_path / (".app.tar.partial-%s" % dead)
    new_style = tmp_path / (".app.tar.partial-%s-0a1b2c" % dead)
    live = tmp_path / (".app.tar.partial-%d-0a1b2c" % os.getppid())
    huge = tmp_path / (".app.tar.partial-%s-x" % ("9" * 40))  # no pid: left alone, no OverflowError
    for path in (old_style, new_style, live, huge):
        path.write_bytes(b"half")
    files.write_atomic(str(tmp_path / "app.tar"), b"whole")
    assert not old_style.exists() and not new_style.exists()
    assert live.exists() and huge.exists()


# --- 9. one line, not a traceback ------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("steps:\n  b: {kind: build, image: a, context: ., args: {2001-01-01: x}}\n",
     'workflows/flow.yaml:2:49: steps.b.args: YAML reads the key 2001-01-01 as a date, not text: '
     'quote it ("2001-01-01")'),
    ("steps:\n  123: {kind: tag, source: a, tags: [b]}\n",
     'workflows/flow.yaml:2:3: steps: YAML reads the key 123 as a number, not text: quote it ("123")'),
    ("steps:\n  yes: {kind: tag, source: a, tags: [b]}\n",
     'workflows/flow.yaml:2:3: steps: YAML reads the key yes as true or false, not text: quote it ("yes")'),
    ("steps:\n  ~: {kind: tag, source: a, tags: [b]}\n",
     'workflows/flow.yaml:2:3: steps: YAML reads the key ~ as null (no value), not text: quote it ("~")'),
    ("steps:\n  ? [a]\n  : {kind: tag, source: a, tags: [b]}\n",
     "workflows/flow.yaml:2:5: steps: a list or a mapping cannot be a key"),
])
def test_a_key_yaml_reads_as_no_text_is_one_line(offline_project, text, expected):
    offline_project.workflow(text)
    assert definition_error(offline_project.doit("list")) == [expected]


def test_a_dockerfile_that_is_not_utf8_loads(offline_project):
    """Docker builds a Dockerfile with a Latin-1 comment; `doit list` gave a
    UnicodeDecodeError traceback."""
    offline_project.write("app/Dockerfile", b"FROM lab/base:1\n# caf\xe9\n", mode="wb")
    offline_project.workflow("steps:\n  app: {kind: build, image: app, context: ../app}\n"
                             "  base: {kind: tag, source: x, tags: ['lab/base:1']}\n")
    done = offline_project.doit("list", "--all")
    assert done.returncode == 0 and "Traceback" not in done.output, done.output


def test_a_file_variable_that_is_not_utf8_is_one_line(offline_project):
    offline_project.write("VERSION", b"1.0.0-caf\xe9\n", mode="wb")
    offline_project.workflow("vars:\n  v: {file: ../VERSION}\n"
                             "steps:\n  send: {kind: transfer, tar: '../app-${v}.tar', destinations: [../out/]}\n")
    output = run_failure(offline_project.doit("send"))
    assert "workflows/flow.yaml:2:3: vars.v: VERSION is not UTF-8 text (byte 9)" in output


@pytest.mark.engine
def test_a_dockerignore_that_is_not_utf8_excludes_what_docker_excludes(project, docker_host, busybox_image, names):
    """Docker matches .dockerignore byte by byte: a Latin-1 pattern leaves out the Latin-1
    file name. Reading it as UTF-8 was a traceback."""
    from tasks import dockerignore

    context = project.path("app").encode()
    os.makedirs(context)
    for name in (b"caf\xe9.txt", b"keep.txt", b"caf\xc3\xa9.txt"):
        with open(os.path.join(context, name), "w") as handle:
            handle.write("x\n")
    with open(os.path.join(context, b".dockerignore"), "wb") as handle:
        handle.write(b"caf\xe9*\n")
    with open(os.path.join(context, b"Dockerfile"), "w") as handle:
        handle.write("FROM %s\nCOPY . /ctx\nRUN busybox find /ctx -name '*.txt'\n" % busybox_image)
    done = subprocess.run(["docker", "-H", docker_host, "build", "--no-cache", "--rm", "-t", "%s/ignore" % names,
                           project.path("app")], capture_output=True, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    assert done.returncode == 0, done.stderr
    sent = sorted(os.fsdecode(line[len(b"/ctx/"):]) for line in done.stdout.splitlines() if line.startswith(b"/ctx/"))
    ours = [p for p in dockerignore.context_files(project.path("app"), always=("Dockerfile", ".dockerignore"))
            if p.endswith(".txt")]
    assert ours == sent == ["caf\u00e9.txt", "keep.txt"]
    project.workflow("steps:\n  app: {kind: build, image: %s/app, context: ../app}\n" % names)
    done = project.doit("app")
    assert done.returncode == 0 and "Traceback" not in done.output, done.output


# --- 13. a short image id is no tag ------------------------------------------------
@pytest.mark.engine
def test_a_short_image_id_is_found_after_the_switch_to_the_listing(docker_host, docker_cli, busybox_image):
    """Once a run's inspects have taken LISTING_AFTER_SECONDS, one listing of tags answers
    the rest; `3f57d9401f8d` is in no listing, so it was 'not in the engine'."""
    from tasks import engine

    full_id = image_id(docker_cli, busybox_image)
    docker = engine.Engine(docker_host)
    docker._inspect_seconds = engine.LISTING_AFTER_SECONDS + 1  # as after many inspects
    try:
        assert docker.image_id(busybox_image) == full_id  # a tag: from the listing
        assert docker._listing is not None
        assert docker.image_id(full_id[7:19]) == full_id
    finally:
        docker.close()

