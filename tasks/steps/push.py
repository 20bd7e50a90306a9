"""push: an image -> registry/repository:tag (Exercise 3.10's docker tag + docker push).

    docker tag lab/basic-app:1.0.0 localhost:5000/lab/basic-app:1.0.0
    docker push localhost:5000/lab/basic-app:1.0.0

Up to date when the registry already holds this image under that tag: its manifest
(GET /v2/<repository>/manifests/<tag>) names the image's config digest, which is
the image id, or its digest is among the image's RepoDigests. Plain HTTP is used
where the engine uses it (loopback, or the engine's insecure registries); a registry
this machine cannot reach is asked through the engine (GET /distribution/...). A version tag that
the registry holds with another image is refused unless `force: true`; `latest`
may move. The daemon reports push failures inside a 200 stream (`errorDetail`):
those fail the step with the daemon's message. A registry that cannot be reached
is retried `retries` times with a doubling delay; refused credentials never are.
Credentials: the environment variables named by username_env/password_env, else
Docker's credential store (docker login). They are never logged.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .. import engine, refs, ui
from ..errors import StepFailed
from . import Verdict, contract, image_ref_problems

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class _PushedImage(TypedDict):
        image_id: str | None

    class PushMemo(_PushedImage, total=False):
        unreachable: str  # why the registry did not answer: run() waits for it
        digest: str  # the same, where it is this image

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

# registry_api and progress are imported in the functions that check or push:
# loading the workflows imports every step module, and a no-op run needs neither.

FIRST_DELAY = 1.0
# Words in the daemon's errorDetail messages.
_AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied",
               "incorrect username or password")
_CONNECTION_WORDS = ("connection refused", "connection reset", "dial tcp", "i/o timeout", "no such host",
                     "eof", "tls handshake timeout", "server misbehaving", "network is unreachable")


def target(step):
    """The reference in the registry, e.g. localhost:5000/lab/basic-app:1.0.0."""
    source = refs.parse(step.get("image"))
    repository = step.get("repository") or (source.name if source.registry == refs.DEFAULT_REGISTRY
                                            else source.repository)
    return "%s/%s:%s" % (step.get("registry"), repository, step.get("tag") or source.tag)


def repository_and_tag(step):
    """(repository inside the registry, tag)."""
    ref = refs.parse(target(step))
    return ref.repository, ref.tag


def outputs(step):
    return [("image", target(step))]


def inputs(step):
    return [("image", step.get("image"))]


def problems(step):
    found = image_ref_problems(step, "image")
    if not found and (not refs.is_valid(target(step)) or refs.parse(target(step)).registry != step.get("registry")):
        found.append("%s: %r is not a valid registry image reference" % (step.where("registry"), target(step)))
    return found + credential_problems(step)


def credential_problems(step):
    """username_env and password_env come together (push, pull)."""
    if ("username_env" in step.spec) != ("password_env" in step.spec):
        return ["%s: credentials need both username_env and password_env" % step.where()]
    return []


def credentials(step):
    """(username, password) from the environment or Docker's credential store, or None."""
    if "username_env" in step.spec:
        names = step.get("username_env"), step.get("password_env")
        missing = [name for name in names if not os.environ.get(name)]
        if missing:
            raise StepFailed("%s: environment variable %s is not set (the registry credentials come from it)"
                             % (step.where("username_env"), " and ".join(missing)))
        return tuple(os.environ[name] for name in names)
    return _stored_credentials(step.get("registry"))


def _stored_credentials(registry):
    """What `docker login REGISTRY` stored (config.json or a credential helper)."""
    config_dir = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    if not os.path.isfile(os.path.join(config_dir, "config.json")):
        return None  # the common case: no SDK import
    from docker import auth

    found = auth.load_config(os.path.join(config_dir, "config.json")).resolve_authconfig(registry) or {}
    if found.get("username") and found.get("password"):
        return found["username"], found["password"]
    return None


def check(step: Step, saved: dict[str, Any]) -> Verdict[PushMemo]:
    from ..registry_api import RegistryUnreachable

    daemon = engine.for_step(step)
    image_ref = step.get("image")
    image = daemon.inspect_image(image_ref)
    memo: PushMemo = {"image_id": (image or {}).get("Id")}
    try:
        return _compare(step, daemon, image, memo)
    except RegistryUnreachable as err:
        memo["unreachable"] = str(err)
        return Verdict(False, "pushing %s as %s (the registry does not answer yet: will retry)"
                       % (image_ref, target(step)), memo)


def _compare(step, daemon, image, memo):
    """The verdict from the digest the registry holds under repository:tag."""
    if image is None:  # not there at the check, or gone since
        raise StepFailed("%s: image %s is not in the engine %s (no step makes it?)"
                         % (step.where("image"), step.get("image"), daemon.host))
    found = _registry_digest(step, daemon)
    if found is None:
        return Verdict(False, "pushing %s as %s: the registry has no such tag" % (step.get("image"), target(step)),
                       memo)
    digest, config_digest = found
    name = refs.parse(target(step)).name
    repo_digests = {d for d in image.get("RepoDigests") or [] if d.split("@")[0] == name}
    if config_digest == image["Id"] or "%s@%s" % (name, digest) in repo_digests:
        memo["digest"] = digest
        return Verdict(True, memo=memo)
    repository, tag = repository_and_tag(step)
    if tag != "latest" and not step.get("force"):
        raise StepFailed("%s: the registry holds %s as another image (%s), not %s (%s); a version tag is "
                         "not replaced: bump the version or set force: true"
                         % (step.where("image"), target(step), digest[:19], step.get("image"), image["Id"][:19]))
    return Verdict(False, "pushing %s as %s: the registry's tag names another image (%s)"
                   % (step.get("image"), target(step), digest[:19]), memo)


def _registry_digest(step, daemon):
    """(manifest digest, config digest or None) of the registry's repository:tag, or None
    when it has no such tag. Asked from here, over plain HTTP where the engine would use
    it; a registry this machine cannot reach is asked through the engine, which may see
    it (an ssh:// or tcp:// engine elsewhere); RegistryUnreachable when neither can."""
    from .. import registry_api

    repository, tag = repository_and_tag(step)
    address = step.get("registry")
    try:
        registry = registry_api.Registry(address, credentials(step), insecure=daemon.registry_is_insecure(address))
        found = registry.manifest(repository, tag)
    except registry_api.RegistryUnreachable as here:
        try:
            digest = daemon.distribution_digest(target(step), auth_config(step))
        except registry_api.RegistryUnreachable:
            raise here from None
        return None if digest is None else (digest, None)
    if found is None:
        return None
    digest, manifest = found
    return digest, (manifest.get("config") or {}).get("digest")


def run(step: Step, verdict: Verdict[PushMemo]) -> dict[str, Any]:
    from ..registry_api import RegistryUnreachable

    memo = verdict.memo
    daemon = engine.for_step(step)
    target_ref = target(step)
    retries = int(step.get("retries", 3))
    attempt = 0
    while True:
        attempt += 1
        try:
            if memo.get("unreachable"):
                # The check could not ask the registry: ask now, before pushing (force: false).
                daemon.forget(step.get("image"))
                if _compare(step, daemon, daemon.inspect_image(step.get("image")), memo).current:
                    ui.say(step.name, "the registry already holds %s" % target_ref)
                    return {"image_id": memo["image_id"], "digest": memo["digest"], "target": target_ref}
                memo.pop("unreachable")
            digest = push_image(daemon, memo["image_id"], target_ref, auth_config(step), step.name)
            break
        except RegistryUnreachable as err:
            memo["unreachable"] = str(err)
            if attempt > retries:
                raise StepFailed("%s: push of %s failed after %d attempt%s: %s; is the registry running "
                                 "(its registry_up step) and is %s right?"
                                 % (step.name, target_ref, attempt, "s" * (attempt > 1), err,
                                    step.get("registry"))) from None
            delay = FIRST_DELAY * 2 ** (attempt - 1)
            ui.warn(step.name, "%s; retrying in %gs (%d of %d)" % (err, delay, attempt, retries))
            time.sleep(delay)
    daemon.forget(target_ref)
    return {"image_id": memo["image_id"], "digest": digest, "target": target_ref}


def auth_config(step):
    """For the engines (push, pull): from the environment, else None (the SDK then sends
    Docker's store)."""
    if "username_env" not in step.spec:
        return None
    username, password = credentials(step)
    return {"username": username, "password": password}


def push_image(daemon, image_id, target_ref, auth_config, step_name):
    """Tag `image_id` as `target_ref` and push it; the digest the daemon reports.
    RegistryUnreachable / RegistryDenied / StepFailed from the daemon's stream."""
    what = "%s: push of %s" % (step_name, target_ref)
    daemon.tag(what, image_id, target_ref)
    reader = _Progress(step_name, target_ref)
    with reader:
        for chunk in daemon.push(what, target_ref, auth_config):
            error = engine.stream_error(chunk)
            if error is not None:
                raise _stream_error(target_ref, error)
            reader.update(chunk)
    if not reader.digest:
        raise StepFailed("%s: push of %s ended without a digest from the daemon" % (step_name, target_ref))
    ui.say(step_name, "pushed %s %s (%s)" % (target_ref, reader.digest, reader.summary()))
    return reader.digest


def _stream_error(target_ref, message):
    from ..registry_api import RegistryDenied, RegistryUnreachable

    lowered = message.lower()
    text = "push of %s: %s" % (target_ref, message)
    if any(word in lowered for word in _AUTH_WORDS):
        return RegistryDenied(text + " (check the credentials: username_env/password_env or docker login)")
    if any(word in lowered for word in _CONNECTION_WORDS):
        return RegistryUnreachable(text)
    return StepFailed(text)


class _Progress:
    """Reads the push stream: the digest, what each layer did, and the bytes sent so
    far for the shared progress bar (drawn on a terminal only, tasks/progress.py)."""

    def __init__(self, step_name, target_ref):
        from .. import progress

        self.target_ref = target_ref
        self.layers = {}  # layer id -> last status
        self.sent = {}    # layer id -> bytes sent
        self.digest = None
        self._bar_context = progress.bytes_bar("%s: pushing %s" % (step_name, target_ref))
        self._bar = None

    def __enter__(self):
        self._bar = self._bar_context.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar_context.__exit__(*exc)

    def update(self, chunk):
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            self.digest = aux["Digest"]
        layer, status = chunk.get("id"), chunk.get("status", "")
        if not layer or layer == refs.split_tag(self.target_ref)[1]:
            return
        self.layers[layer] = status
        current = (chunk.get("progressDetail") or {}).get("current")
        if current is not None and current > self.sent.get(layer, 0):
            self._bar.advance(current - self.sent.get(layer, 0))
            self.sent[layer] = current

    def summary(self):
        from .. import progress

        pushed = sum(1 for status in self.layers.values() if status == "Pushed")
        present = sum(1 for status in self.layers.values() if "exists" in status.lower())
        return "%d layer%s pushed (%s), %d already there" % (pushed, "s" * (pushed != 1),
                                                             progress.human_size(sum(self.sent.values())), present)
