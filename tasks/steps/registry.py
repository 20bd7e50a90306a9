"""registry: the distribution registry as a container (Exercise 3.10), the lab's `registry_up`.

    docker run -d -p 5000:5000 --restart=always --name registry \\
        -v registry-data:/var/lib/registry registry:2

A named volume holds /var/lib/registry, so pushed images survive a restart or a
re-creation of the container. Optional htpasswd auth and TLS: the step names the
files (mounted read-only); passwords live only in the htpasswd file.

Up to date when the container runs with this definition (a digest of the image id,
port, volume, files and settings, kept as a label on the container) and GET /v2/
answers (401 counts when auth is on). A changed definition re-creates the container;
the volume keeps the data. A container of that name that dockflow did not make is
never touched. run() waits, bounded by `wait_seconds`, until /v2/ answers.
"""
from __future__ import annotations

import os
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from .. import engine, ui
from ..digest import value_digest
from ..errors import StepFailed
from ..files import sha256_file
from ..labels import REGISTRY_IMAGE_LABEL, REGISTRY_LABEL
from . import Verdict, contract, image_ref_problems, remove_container

if TYPE_CHECKING:  # for mypy only: each step module is imported on every no-op
    from typing import TypedDict

    from ..workflow import Step

    class _WantedRegistry(TypedDict):
        definition: dict[str, Any]
        digest: str  # value_digest of the definition, the container's label

    class RegistryMemo(_WantedRegistry, total=False):
        container_id: str  # the container of that name, where there is one
        recreate: bool  # it was made from another definition

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock

DATA_PATH = "/var/lib/registry"
# Where the files are mounted inside the container (read-only).
MOUNTS = {"htpasswd": "/auth/htpasswd", "tls_cert": "/certs/domain.crt", "tls_key": "/certs/domain.key"}
LOG_LINES = 15


def image_ref(step):
    return step.get("image", "registry:2")


def container_name(step):
    return step.get("name", "registry")


def volume_name(step):
    return step.get("volume", container_name(step) + "-data")


def address(step):
    """host:port where the registry answers, as seen from this machine."""
    return "%s:%d" % (_engine_hostname(engine.for_step(step).host), int(step.get("port", 5000)))


def outputs(step):
    return []


def inputs(step):
    return [("image", image_ref(step))] + [("file", step.path(f)) for f in MOUNTS if f in step.spec]


def problems(step):
    found = []
    port = str(step.get("port", 5000))
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        found.append("%s: %r is not a port number" % (step.where("port"), port))
    found += image_ref_problems(step, "image")  # the default, registry:2, is valid
    for field in MOUNTS:
        if field in step.spec and not os.path.isfile(step.path(field)):
            found.append("%s: %s does not exist" % (step.where(field), step.get(field)))
    if ("tls_cert" in step.spec) != ("tls_key" in step.spec):
        found.append("%s: TLS needs both tls_cert and tls_key" % step.where("tls_cert" if "tls_cert" in step.spec
                                                                           else "tls_key"))
    return found


def _engine_hostname(host):
    """The registry's published port is on the engine's machine: loopback for a
    local socket, else the host of a tcp:// or ssh:// engine address."""
    url = urllib.parse.urlsplit(host)
    return url.hostname if url.scheme in ("tcp", "http", "https", "ssh") and url.hostname else "127.0.0.1"


def definition(step, image_id):
    """What the container is made from; its digest goes on the container as a label."""
    environment = {}
    if "htpasswd" in step.spec:
        environment.update(REGISTRY_AUTH="htpasswd", REGISTRY_AUTH_HTPASSWD_REALM=step.get("realm", "Registry Realm"),
                           REGISTRY_AUTH_HTPASSWD_PATH=MOUNTS["htpasswd"])
    if "tls_cert" in step.spec:
        environment.update(REGISTRY_HTTP_TLS_CERTIFICATE=MOUNTS["tls_cert"],
                           REGISTRY_HTTP_TLS_KEY=MOUNTS["tls_key"])
    files = {field: step.path(field) for field in MOUNTS if field in step.spec}
    return {
        "image_id": image_id,
        "port": int(step.get("port", 5000)),
        "bind": step.get("bind", "0.0.0.0"),
        "volume": volume_name(step),
        "environment": environment,
        "files": files,
        # The files' content: a new password file or certificate restarts the registry.
        "file_digests": {field: sha256_file(path) for field, path in files.items()},
    }


def check(step: Step, saved: dict[str, Any]) -> Verdict[RegistryMemo]:
    daemon = engine.for_step(step)
    image_id = daemon.image_id(image_ref(step))
    if image_id is None:
        raise StepFailed("%s: image %s is not in the engine %s (the lab's registry_image step makes it)"
                         % (step.where("image"), image_ref(step), daemon.host))
    wanted = definition(step, image_id)
    memo: RegistryMemo = {"definition": wanted, "digest": value_digest(wanted)}
    name = container_name(step)
    container = daemon.inspect_container(name)
    if container is None:
        return Verdict(False, "starting registry %s on port %d: no such container" % (name, wanted["port"]), memo)
    labels = (container.get("Config") or {}).get("Labels") or {}
    if REGISTRY_LABEL not in labels:
        raise StepFailed("%s: a container named %s exists and dockflow did not make it; remove it "
                         "(docker rm -f %s) or give this step another name:" % (step.where(), name, name))
    memo["container_id"] = container["Id"]
    if labels[REGISTRY_LABEL] != memo["digest"]:
        memo["recreate"] = True
        return Verdict(False, "re-creating registry container %s: %s" % (name, _what_changed(labels, wanted)), memo)
    if not (container.get("State") or {}).get("Running"):
        return Verdict(False, "starting registry %s: the container is stopped" % name, memo)
    if not _answers(step, wanted):
        return Verdict(False, "waiting for registry %s: /v2/ does not answer yet" % name, memo)
    return Verdict(True, memo=memo)


def _what_changed(labels, wanted):
    if labels.get(REGISTRY_IMAGE_LABEL) != wanted["image_id"]:
        return "its image changed"
    return "its definition changed (port, volume, auth or TLS files)"


def _answers(step, wanted):
    from .. import registry_api  # here, not at the top: loading the workflows never asks a registry

    status = registry_api.v2_status(address(step), tls=bool(wanted["environment"].get("REGISTRY_HTTP_TLS_KEY")))
    return status == 200 or (status == 401 and "REGISTRY_AUTH" in wanted["environment"])


def run(step: Step, verdict: Verdict[RegistryMemo]) -> dict[str, Any]:
    memo = verdict.memo
    daemon = engine.for_step(step)
    wanted, name = memo["definition"], container_name(step)
    what = "%s: registry container %s" % (step.name, name)
    if memo.get("recreate"):
        daemon.remove_container(what, memo.pop("container_id"))
    if "container_id" not in memo:
        memo["container_id"] = _create(step, daemon, wanted, memo["digest"])
    container = daemon.inspect_container(memo["container_id"])
    if container is None:
        raise StepFailed("%s: it was removed while this step ran" % what)
    if not container["State"]["Running"]:
        _start(step, daemon, memo["container_id"], wanted)
    _wait(step, daemon, memo["container_id"], wanted)
    ui.say(step.name, "registry %s answers at %s (data in volume %s)" % (name, address(step), wanted["volume"]))
    return {"container_id": memo["container_id"], "digest": memo["digest"], "address": address(step)}


def _create(step, daemon, wanted, digest):
    what = "%s: create registry container %s" % (step.name, container_name(step))
    daemon.create_volume(what, wanted["volume"], labels={REGISTRY_LABEL: "data"})
    binds = {wanted["volume"]: {"bind": DATA_PATH, "mode": "rw"}}
    binds.update({path: {"bind": MOUNTS[field], "mode": "ro"} for field, path in wanted["files"].items()})
    return daemon.create_container(
        what, wanted["image_id"], name=container_name(step), environment=wanted["environment"], ports=[5000],
        host_config={"binds": binds, "port_bindings": {"5000/tcp": (wanted["bind"], wanted["port"])},
                     "restart_policy": {"Name": "always"}},
        labels={REGISTRY_LABEL: digest, REGISTRY_IMAGE_LABEL: wanted["image_id"]})


def _start(step, daemon, container_id, wanted):
    try:
        daemon.start_container("%s: start registry %s" % (step.name, container_name(step)), container_id)
    except StepFailed as err:
        # Leave no container behind that a later run would take for a good one.
        remove_container(daemon, container_id)
        text = str(err)
        if "already allocated" in text or "address already in use" in text:
            raise StepFailed("%s: port %d is taken on %s (another registry?); stop it or choose "
                             "another port:" % (step.where("port"), wanted["port"], wanted["bind"])) from None
        raise


def _wait(step, daemon, container_id, wanted):
    """Until /v2/ answers; bounded by wait_seconds. A container that exits fails at once."""
    deadline = time.monotonic() + float(step.get("wait_seconds", 30))
    # A registry answers ~0.1-0.3 s after its start: ask often at first, then every 0.2 s.
    pause = 0.02
    while True:
        if _answers(step, wanted):
            return
        state = (daemon.inspect_container(container_id) or {}).get("State") or {"Running": False, "ExitCode": "?"}
        if not state["Running"] or time.monotonic() > deadline:
            logs = daemon.container_logs("%s: logs of %s" % (step.name, container_name(step)), container_id,
                                         tail=LOG_LINES).rstrip()
            why = "exited with code %s" % state["ExitCode"] if not state["Running"] else \
                "did not answer on /v2/ within %ss" % step.get("wait_seconds", 30)
            raise StepFailed("%s: registry %s %s at %s; its last log lines:\n%s"
                             % (step.name, container_name(step), why, address(step),
                                ui.indented(logs.splitlines())))
        time.sleep(pause)
        pause = min(0.2, pause * 1.5)
