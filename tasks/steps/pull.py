"""pull: registry/repository:tag -> one engine or several at once (docker pull).

The registry as the way images reach other hosts: a push step puts the image there,
and each target engine (`docker_host`, or `docker_hosts: [...]`, `parallel:` at a
time, tasks/fanout.py) pulls it, fetching only the layers it lacks. One line per
target says what it fetched; a target that fails does not stop the others, the
step then fails naming it, and a rerun pulls only there.
Up to date when every target has the registry's digest for that tag: each engine
is asked for the digest (GET /distribution/<ref>/json, so it is the registry as
that engine reaches it: its address, its insecure registries) and its image of
that name must carry it among its RepoDigests.
Credentials: the environment variables named by username_env/password_env go to
each engine with the request (X-Registry-Auth), as push sends them; without them
the SDK sends what `docker login` stored. Never on a command line, never logged.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import engine, fanout, refs, ui
from ..errors import StepFailed
from . import Verdict, contract, image_ref_problems
from .push import auth_config, credential_problems

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class PullMemo(TypedDict):
        hosts: list[str]
        # host -> (the registry's digest, None) where it lacks it, or (None, why it could not be
        # asked); the digest is Any: mypy cannot see that it is a str wherever the error is None
        pending: dict[str, tuple[Any, Exception | None]]

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock
outputs = contract.lands_on_other_engines


def inputs(step):
    # Read from the registry, which every engine reaches, not from an engine: a push of
    # this very reference (this machine's view of the registry) comes first.
    return [("registry", step.get("image"))]


def problems(step):
    found = image_ref_problems(step, "image") + fanout.problems(step)
    if not found and refs.parse(step.get("image")).digest:
        found.append("%s: %r names a digest; pull takes registry/repository:tag" % (
            step.where("image"), step.get("image")))
    return found + credential_problems(step)


def check(step: Step, saved: dict[str, Any]) -> Verdict[PullMemo]:
    image_ref = step.get("image")
    auth = auth_config(step)
    hosts = fanout.targets(step)
    answers = fanout.each(step, hosts, lambda host, _stopping: _state_on(step, host, image_ref, auth))
    if len(hosts) == 1 and answers[hosts[0]][1]:
        raise answers[hosts[0]][1]
    pending: dict[str, tuple[Any, Exception | None]] = {}  # as PullMemo's
    for host, (answer, error) in answers.items():
        if error or not answer[1]:
            pending[host] = (answer[0] if answer else None, error)
    memo: PullMemo = {"hosts": hosts, "pending": pending}
    if not pending:
        return Verdict(True, memo=memo)
    return Verdict(False, "pulling %s: %s" % (image_ref, "; ".join(
        "%s: %s" % (host, "not asked: %s" % error if error else "it lacks %s" % digest[:19])
        for host, (digest, error) in pending.items())), memo)


def _state_on(step, host, image_ref, auth_config):
    """(the digest the registry holds under image_ref as the engine at `host` sees it,
    whether that engine's image of that name carries it)."""
    daemon = engine.for_step(step, host)
    digest = daemon.distribution_digest(image_ref, auth_config)
    if digest is None:
        raise StepFailed("%s: the registry has no %s (asked through the engine %s): push it first"
                         % (step.where("image"), image_ref, daemon.host))
    return digest, _carries(daemon, image_ref, digest)


def _carries(daemon, image_ref, digest):
    """Does the engine's image named image_ref list name@digest among its RepoDigests?"""
    image = daemon.inspect_image(image_ref) or {}
    return "%s@%s" % (refs.parse(image_ref).name, digest) in (image.get("RepoDigests") or [])


def run(step: Step, verdict: Verdict[PullMemo]) -> dict[str, Any]:
    memo = verdict.memo
    image_ref = step.get("image")
    auth = auth_config(step)
    # The check's answers stand: a target it could not ask is not tried again in this run.
    # Nothing pending, yet run (doit -a): every target pulls again (a no-op where it is there).
    pending = memo["pending"] or {host: (None, None) for host in memo["hosts"]}
    failed = {host: error for host, (_digest, error) in pending.items() if error}
    to_pull = [host for host in pending if host not in failed]
    done = fanout.each(step, to_pull, lambda host, stopping: _pull(step, host, image_ref, auth, stopping))
    failed.update({host: error for host, (_result, error) in done.items() if error})
    for host in memo["hosts"]:
        if host not in pending:
            ui.say(step.name, "%s already has %s: up to date" % (host, image_ref))
    if failed:
        raise fanout.failure(step, failed, memo["hosts"])
    return {"digests": {host: digest for host, (digest, _error) in done.items()}}


def _pull(step, host, image_ref, auth_config, stopping):
    """docker pull on the engine at `host`; the digest it now carries. Says so in one line."""
    from ..progress import human_size

    daemon = engine.for_step(step, host)
    what = "%s: pull of %s on %s" % (step.name, image_ref, daemon.host)
    started = time.monotonic()
    reader = _PullStream()
    for chunk in fanout.checked(daemon.pull(what, image_ref, auth_config), stopping):
        error = engine.stream_error(chunk)
        if error is not None:
            raise StepFailed("%s: %s" % (what, error))
        reader.update(chunk)
    seconds = time.monotonic() - started
    daemon.forget(image_ref)
    if not reader.digest or not _carries(daemon, image_ref, reader.digest):
        raise StepFailed("%s: after the pull, %s on %s does not carry the registry's digest %s" % (
            step.name, image_ref, daemon.host, reader.digest or "(the engine named none)"))
    ui.say(step.name, "pulled %s into %s: fetched %d layer%s (%s), %d already there, in %.1f s (%s)" % (
        image_ref, daemon.host, reader.fetched(), "s" * (reader.fetched() != 1), human_size(reader.fetched_bytes()),
        reader.present(), seconds, reader.digest[:19]))
    return reader.digest


class _PullStream:
    """Reads the engine's pull stream: the digest, and what each layer did."""

    def __init__(self):
        self.digest = None
        self.layers = {}  # layer id -> its last status
        self.sizes = {}   # layer id -> its size, from the download's progress

    def update(self, chunk):
        status = chunk.get("status") or ""
        if status.startswith("Digest: "):
            self.digest = status.split(" ", 1)[1].strip()
        layer = chunk.get("id")
        if not layer or status.startswith(("Pulling from", "Digest", "Status")):
            return
        self.layers[layer] = status
        total = (chunk.get("progressDetail") or {}).get("total")
        if status == "Downloading" and total:
            self.sizes[layer] = total

    def fetched(self):
        return sum(1 for status in self.layers.values() if status in ("Pull complete", "Download complete"))

    def fetched_bytes(self):
        return sum(self.sizes.values())

    def present(self):
        return sum(1 for status in self.layers.values() if status == "Already exists")
