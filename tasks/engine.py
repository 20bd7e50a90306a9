"""The one place that talks to Docker engines.

Two doors to the same engine:
- `Engine.inspect_image` is a single HTTP GET over the engine's socket with the
  standard library (the HTTP is tasks/http_wire.py's). Up-to-date checks use it: the
  SDK costs ~110 ms to import, and a no-op `doit build_app` must stay cheaper than a
  cached `docker build`.
- The work of the usual runs (build, import, tag, push, save, load) goes over the
  same socket too, so a build-tag-push-save run never imports the SDK.
- The Docker SDK, for all other work (and for ssh:// and TLS engines, or a docker
  config whose credentials or headers it adds), imported only when a step really
  needs it, and only behind the Engine's verbs.
Errors of both are turned into StepFailed / EngineUnreachable here, once.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from . import http_wire, refs
from .errors import EngineUnreachable, StepFailed
from .runstate import RUN

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"  # the engine's socket on an ssh:// host


def default_host():
    """The engine a step with no docker_host talks to, chosen as the docker CLI does:
    DOCKER_HOST, else the context DOCKER_CONTEXT names, else the docker config's
    current context, else the local socket."""
    return _default_endpoint()[0]


def host_for(step):
    """The address of the engine a step talks to: its docker_host, else default_host()."""
    return step.get("docker_host") or default_host()




def _default_endpoint():
    key = tuple(os.environ.get(name) or "" for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"))
    if key not in RUN.endpoints:
        RUN.endpoints[key] = _read_endpoint(*key)
    return RUN.endpoints[key]


def _read_endpoint(docker_host, context_name, config_dir):
    if docker_host:
        return docker_host, None
    config_dir = config_dir or os.path.join(os.path.expanduser("~"), ".docker")
    named_by = "DOCKER_CONTEXT"
    if not context_name:
        context_name, named_by = _current_context(config_dir), "the docker config's currentContext"
    if not context_name or context_name == "default":
        return DEFAULT_HOST, None
    # the CLI's context store: contexts/meta/<sha256 of the name>/meta.json, TLS files beside
    import hashlib

    context_id = hashlib.sha256(context_name.encode()).hexdigest()
    try:
        with open(os.path.join(config_dir, "contexts", "meta", context_id, "meta.json"), encoding="utf-8") as handle:
            endpoint = json.load(handle)["Endpoints"]["docker"]
        host = endpoint["Host"]
    except (OSError, ValueError, KeyError, TypeError):
        raise EngineUnreachable("docker context %r (%s) does not exist in %s: `docker context ls` lists "
                                "the contexts" % (context_name, named_by, config_dir)) from None
    tls_dir = os.path.join(config_dir, "contexts", "tls", context_id, "docker")
    tls = None
    if os.path.isdir(tls_dir):
        tls = {name: os.path.join(tls_dir, name + ".pem") for name in ("ca", "cert", "key")
               if os.path.exists(os.path.join(tls_dir, name + ".pem"))}
        tls["verify"] = not endpoint.get("SkipTLSVerify")
    return host, tls


def _current_context(config_dir):
    try:
        with open(os.path.join(config_dir, "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return None
    return config.get("currentContext") if isinstance(config, dict) else None


def _tls_of(host):
    """The TLS files of the default context, for the engine it names."""
    default, tls = _default_endpoint()
    return tls if host == default else None


def for_step(step, host=None):
    """The Engine of the step's docker_host (or of `host`, one of its targets). An ssh://
    engine is reached through an ssh tunnel of ours (tasks/ssh.py: the step's `ssh:`
    options, its `remote_socket`), not the SDK's ssh support (paramiko or the docker CLI
    on both ends); it keeps its ssh:// name in every message."""
    host = host or host_for(step)
    if not host.startswith("ssh://"):
        return get(host)
    from . import ssh

    return get(host, ssh.tunnel(host, step.get("ssh"), step.workflow.base_dir,
                                step.get("remote_socket", DEFAULT_REMOTE_SOCKET)))


def get(host, address=None):
    """The Engine named `host`, reached at `address` (default: `host` itself)."""
    address = address or host
    if address not in RUN.engines:
        RUN.engines[address] = Engine(host, address)
    return RUN.engines[address]


def drop_all():
    """Forget every Engine of this process, closing nothing: a forked worker (doit -n N)
    opens its own sockets, as doit's process goes on using the ones it shares with it."""
    RUN.engines.clear()


def forget_all():
    """Every engine's inspect results of this process dropped: another process (a
    worker of doit -n N, another run) may have made those images since."""
    for daemon in RUN.engines.values():
        daemon.forget()


# One GET /images/json answers every later lookup of a run, but costs the engine time
# in proportion to the images and tags it holds: ~5 ms for a few dozen, 0.16 s for
# 750 images (engine 20.10). An inspect is ~0.5 ms, but ~10 ms for an image with
# thousands of tags (its inspect lists them all). So a run switches to the listing
# once its inspects have taken this long (rent until it would have paid for buying).
LISTING_AFTER_SECONDS = 0.05

# A build's or an import's tar is sent with this timeout; its answer is read with none,
# as the SDK does: a RUN may print nothing for a long while.
SEND_TIMEOUT = 600


def _is_tag(ref):
    """A name a listing of tags answers for; not an image id or a prefix of one."""
    return not ref.startswith("sha256:") and "@" not in ref and not refs.may_be_image_id(ref)


def _summary_of(image):
    if image is None:
        return None
    return {"Id": image["Id"], "Labels": (image.get("Config") or {}).get("Labels") or {}}


_RAISE = object()  # Engine._sdk: no value stands for "not found"; raise
_GONE = object()   # Engine._sdk's answer for "not found", where None is a success


def _parse_address(host):
    """The engine address split as urllib does; StepFailed, in one line, for one that
    no engine could have (`tcp://[::1`, a port past 65535, an unknown scheme)."""
    try:
        url = urllib.parse.urlparse(host)
        url.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError as err:
        raise StepFailed("engine address %r: %s (expected unix:///path, tcp://host:port or "
                         "ssh://[user@]host[:port])" % (host, err)) from None
    if url.scheme not in ("unix", "tcp", "http", "https", "ssh", "npipe"):
        raise StepFailed("engine address %r: unknown scheme %r (expected unix:///path, tcp://host:port or "
                         "ssh://[user@]host[:port])" % (host, url.scheme))
    return url


class Engine:
    def __init__(self, host, address=None):
        self.host = host  # its name in messages
        self.address = address or host  # where it is reached: an ssh:// engine's tunnel
        self._url = _parse_address(self.address)
        self._client = None
        self._client_lock = threading.Lock()  # doit -P thread: steps of one process share the client
        self._wire = http_wire.KeptAlive(lambda: self._connect(timeout=30))
        # Inspect results stay valid for this run until a step that makes the
        # image is about to run (doit_tasks.py calls forget() then).
        self._inspected = {}
        # Once inspects have taken LISTING_AFTER_SECONDS in one run, one GET /images/json
        # answers the rest (a 2,000-step workflow asks the engine once, not 2,000 times).
        self._inspect_seconds = 0.0
        self._listing = None   # normalised tag -> {"Id", "Labels"}
        self._stale = set()    # refs forgotten since the listing was read
        self._info = None

    # --- cheap reads, standard library only ---------------------------------
    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """The engine's inspect dict for `ref`, or None if it has no such image."""
        if ref not in self._inspected:
            try:
                self._inspected[ref] = self._inspect_plain(ref)
            except _NeedsSdk:
                self._inspected[ref] = self._inspect_sdk(ref)
        return self._inspected[ref]

    def inspect_container(self, name):
        """The engine's inspect dict for container `name`, or None. Not cached:
        a container's state changes under us."""
        try:
            return self._inspect_plain(name, "containers")
        except _NeedsSdk:
            return self._inspect_sdk(name, "containers")

    def _inspect_plain(self, ref, kind="images"):
        status, body = self._request("/%s/%s/json" % (kind, urllib.parse.quote(ref, safe="")))
        if status == 404:
            return None
        if status != 200:
            raise self._refused("inspect %s" % ref, status, body)
        return json.loads(body)

    def _inspect_sdk(self, ref, kind="images"):
        import docker

        try:
            return self._api.inspect_image(ref) if kind == "images" else self._api.inspect_container(ref)
        except docker.errors.NotFound:
            return None
        except self.sdk_errors() as err:
            raise self.failure("inspect %s" % ref, err) from None

    def image_summary(self, ref):
        """{"Id": ..., "Labels": {...}} of the image `ref` names, or None: all an
        up-to-date check needs, from the listing once a run has asked many times."""
        if ref in self._inspected or not _is_tag(ref) or refs.normalize(ref) in self._stale:
            return _summary_of(self.inspect_image(ref))
        if self._listing is None and self._inspect_seconds > LISTING_AFTER_SECONDS:
            self._listing = self._read_listing()
        if self._listing is None:
            start = time.perf_counter()
            summary = _summary_of(self.inspect_image(ref))
            self._inspect_seconds += time.perf_counter() - start
            return summary
        return self._listing.get(refs.normalize(ref))

    def _read_listing(self):
        try:
            status, body = self._request("/images/json")
        except _NeedsSdk:
            return None
        if status != 200:
            return None
        listing = {}
        for image in json.loads(body):
            summary = {"Id": image["Id"], "Labels": image.get("Labels") or {}}
            for tag in image.get("RepoTags") or ():
                if tag != "<none>:<none>":
                    listing[refs.normalize(tag)] = summary
        return listing

    def image_id(self, ref: str) -> str | None:
        summary = self.image_summary(ref)
        return summary["Id"] if summary else None

    def image_labels(self, ref):
        summary = self.image_summary(ref)
        return summary["Labels"] if summary else None

    def info(self):
        """The engine's GET /info (storage driver, insecure registries...), read once a run."""
        if self._info is None:
            try:
                status, body = self._request("/info")
            except _NeedsSdk:
                try:
                    self._info = self._api.info()
                except self.sdk_errors() as err:
                    raise self.failure("info", err) from None
                return self._info
            if status != 200:
                raise self._refused("info", status, body)
            self._info = json.loads(body)
        return self._info

    def layer_chains(self):
        """The chain ids of every layer the engine keeps under some image (all=1: the
        intermediate images of a build hold layers too)."""
        try:
            status, body = self._request("/images/json?all=1")
            if status != 200:
                raise self._refused("image list", status, body)
            image_ids = [image["Id"] for image in json.loads(body)]
        except _NeedsSdk:
            try:
                image_ids = [image["Id"] for image in self._api.images(all=True)]
            except self.sdk_errors() as err:
                raise self.failure("image list", err) from None
        chains = set()
        for image_id in image_ids:
            image = self.inspect_image(image_id) or {}
            chains.update(chain_ids((image.get("RootFS") or {}).get("Layers") or []))
        return chains

    def registry_is_insecure(self, address):
        """True where the engine speaks plain HTTP (or unverified TLS) to the registry at
        `address`, decided as the engine decides: its insecure registries by name, else
        by the networks of InsecureRegistryCIDRs (127.0.0.0/8 by default) the name
        resolves into. A loopback address literal needs no question to the engine."""
        from . import registry_api

        if registry_api.is_loopback(address):
            return True
        config = self.info().get("RegistryConfig") or {}
        index = (config.get("IndexConfigs") or {}).get(address)
        if index is not None:
            return not index.get("Secure", True)
        return registry_api.resolves_into(address, config.get("InsecureRegistryCIDRs") or [])

    def distribution_digest(self, ref, auth_config=None):
        """The digest the registry holds under `ref`, asked through the engine (which may
        see a registry this machine cannot reach); None when it has no such tag."""
        from .registry_api import RegistryDenied, RegistryUnreachable

        try:
            return self.distribution("inspect %s" % ref, ref, auth_config)["Descriptor"]["digest"]
        except EngineUnreachable:
            raise
        except StepFailed as err:
            reason = str(err)
            lowered = reason.lower()
            if "manifest unknown" in lowered or "not found" in lowered:
                return None
            if "unauthorized" in lowered or "denied" in lowered:
                raise RegistryDenied("registry of %s, asked through the engine %s: %s" % (ref, self.host, reason)) \
                    from None
            raise RegistryUnreachable("registry of %s, asked through the engine %s: %s" % (ref, self.host, reason)) \
                from None

    def uses_containerd_store(self):
        """True when the engine keeps images in containerd's image store (the default of
        new Engine 29 installs): its /info says driver-type io.containerd.snapshotter.v1."""
        status = self.info().get("DriverStatus") or []
        return any(isinstance(pair, list) and len(pair) == 2 and pair[0] == "driver-type"
                   and str(pair[1]).startswith("io.containerd.snapshotter") for pair in status)

    def ping(self):
        """True when the engine answers /_ping."""
        try:
            return self._request("/_ping")[0] == 200
        except (StepFailed, _NeedsSdk):
            return False
        finally:
            self.close()

    def close(self):
        self._wire.close()

    def forget(self, ref=None):
        if ref is None:
            self._inspected.clear()
            self._listing = None
        else:
            self._inspected.pop(ref, None)
            self._stale.add(refs.normalize(ref))

    def _request(self, path, method="GET"):
        """(status, body) of a request with no body on the kept-alive socket (tasks/http_wire.py)."""
        try:
            return self._wire.request(method, path)
        except http_wire.Closed:
            raise self.unreachable("the connection was closed") from None
        except OSError as err:
            raise self.unreachable(err.strerror or str(err)) from None

    def _refused(self, what, status, body):
        return StepFailed("engine %s: %s answered %d: %s" % (self.host, what, status, http_wire.error_message(body)))

    def _speaks_plain(self):
        """True for an address this module speaks HTTP to itself: a unix socket (an
        ssh:// engine's tunnel is one), or TCP without TLS. Others need the SDK."""
        if self._url.scheme == "unix":
            return True
        return (self._url.scheme in ("tcp", "http") and not os.environ.get("DOCKER_TLS_VERIFY")
                and not _tls_of(self.host))

    def _connect(self, timeout):
        """A new socket to the engine; _NeedsSdk for schemes only the SDK speaks."""
        url = self._url
        if not self._speaks_plain():
            raise _NeedsSdk()
        if url.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address = url.path
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (url.hostname, url.port or 2375)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    # --- work sent without the SDK: build and import ---------------------------
    # Each is the first work of a run (an edit rebuilds; a fresh machine imports its
    # base first). Sent over the socket here, they spare the SDK's ~0.1 s of CPU to
    # import and connect. ssh:// and TLS engines get the SDK's request.
    def build(self, what, context_tar, buildkit=False, **options):
        """Decoded chunks of the daemon's build stream; StepFailed naming `what` if
        the engine refuses the request. `options` are the SDK's `api.build` keywords
        (tag, dockerfile, buildargs, labels, target, cache_from, pull, rm, forcerm);
        `context_tar` is a file open on the context as a tar. `buildkit`: the engine's
        BuildKit builds it (version=2; its progress comes as buildkit_trace messages).
        With registry credentials, proxies or headers in the docker config, the SDK
        sends it, for it adds them, and the SDK knows only the legacy builder."""
        sock = self._work_socket()
        if sock is not None:
            query = _build_query(options)
            if buildkit:
                query["version"] = "2"  # the engine's BuildKit; it stops the build if we go
            yield from self._post_plain(what, sock, "/build", query, context_tar)
            return
        try:
            yield from self._api.build(fileobj=context_tar, custom_context=True, decode=True, **options)
        except self.sdk_errors() as err:
            raise self.failure(what, err) from None

    def import_image(self, what, rootfs_tar, repository, tag, changes):
        """docker import of the tar file `rootfs_tar` as repository:tag with Dockerfile
        `changes`; StepFailed naming `what` if the engine refuses it."""
        sock = self._work_socket()
        if sock is None:
            try:
                self._api.import_image_from_file(rootfs_tar.name, repository=repository, tag=tag, changes=changes)
            except self.sdk_errors() as err:
                raise self.failure(what, err) from None
            return
        query = {"fromSrc": "-", "repo": repository, "tag": tag, "changes": changes}
        for chunk in self._post_plain(what, sock, "/images/create", query, rootfs_tar):
            error = stream_error(chunk)
            if error is not None:
                raise StepFailed("%s: %s" % (what, error))

    def sends_work_plain(self):
        """True where build, push, save and load go over the socket, not through the SDK."""
        return self._speaks_plain() and not _docker_config_matters()

    def _work_socket(self):
        """A new socket for one long request, or None where the SDK must send it: an
        engine only it speaks to, or a docker config whose additions only it makes."""
        if not self.sends_work_plain():
            return None
        try:
            return self._connect(timeout=SEND_TIMEOUT)
        except OSError as err:
            raise self.unreachable(err.strerror or str(err)) from None

    def _post_plain(self, what, sock, path, query, tar_file):
        """POST the tar file to `path`; the decoded chunks of the JSON stream answered."""
        return self._mapped(what, http_wire.post_tar(what, sock, path, query, tar_file))

    def _exchange(self, what, sock, request, blocks=()):
        """The pieces of the answer to one request on a socket of its own, its body
        `blocks` (http_wire.exchange)."""
        return self._mapped(what, http_wire.exchange(what, sock, request, blocks=blocks))

    def _mapped(self, what, answer):
        """The items of `answer`, its wire errors as EngineUnreachable naming `what`."""
        try:
            yield from answer
        except http_wire.Closed:
            raise EngineUnreachable("%s: the engine closed the connection before its answer ended (did dockerd "
                                    "stop?)" % what) from None
        except OSError as err:
            raise EngineUnreachable("%s: %s" % (what, self.unreachable(err.strerror or str(err)))) from None

    def unreachable(self, why):
        return EngineUnreachable(
            "cannot reach the Docker engine at %s (%s): is dockerd running there? "
            "Set DOCKER_HOST or the step's docker_host to use another engine" % (self.host, why))

    # --- the SDK, for work ---------------------------------------------------
    @property
    def _sdk_client(self):
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        import docker

        try:
            if self.host == default_host() and os.environ.get("DOCKER_TLS_VERIFY"):
                # DOCKER_HOST with TLS: the SDK reads DOCKER_CERT_PATH as the docker CLI does.
                return docker.from_env(version="auto", timeout=600)
            return docker.DockerClient(base_url=self.address, version="auto", timeout=600, tls=self.tls_config())
        except docker.errors.DockerException as err:
            raise self.unreachable(_reason(err)) from None

    # --- verbs for work: the SDK behind them, its errors mapped here, once ------
    # `what` names the work in the error a user reads ("build_app: tag basic-app").
    # Lookups of something that is not there return None, as community.docker's
    # client does (find_image, get_container_by_id); steps never touch the SDK.
    # Tag and push go over the socket where they can, as inspect does: the lab's steps
    # then never import the SDK, whose ~0.1 s of CPU in each worker competes with the
    # engine's own work on a small machine.
    def tag(self, what: str, image_id: str, ref: str) -> None:
        repository, tag = refs.split_tag(ref)
        query = urllib.parse.urlencode({"repo": repository, "tag": tag})
        try:
            status, body = self._request("/images/%s/tag?%s" % (urllib.parse.quote(image_id, safe=""), query), "POST")
        except _NeedsSdk:
            self._sdk(what, "tag", image_id, repository, tag, force=True)
        else:
            if status != 201:
                raise StepFailed("%s: %s" % (what, http_wire.error_message(body)))
        self.forget(ref)

    def push(self, what: str, ref: str, auth_config: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """The decoded chunks of the daemon's push stream. With no auth_config, an
        anonymous push where the docker config holds no credentials (else the SDK sends
        them)."""
        repository, tag = refs.split_tag(ref)
        sock = self._work_socket()
        if sock is None:
            yield from self._stream(what, self._sdk(what, "push", repository, tag=tag, stream=True, decode=True,
                                                    auth_config=auth_config))
            return
        yield from http_wire.json_stream(what, self._exchange(what, sock, push_request(repository, tag, auth_config)))

    def pull(self, what, ref, auth_config=None):
        """The decoded chunks of the daemon's pull stream."""
        repository, tag = refs.split_tag(ref)
        return self._stream(what, self._sdk(what, "pull", repository, tag=tag, stream=True, decode=True,
                                            auth_config=auth_config))

    def save(self, what: str, ref: str, chunk_size: int) -> Iterator[bytes]:
        """The bytes of `docker save REF`, chunk by chunk. Over the socket where it can
        (as build): a save and load of an app then never imports the SDK (0.15 to 0.27 s)."""
        sock = self._work_socket()
        if sock is None:
            return self._stream(what, self._sdk(what, "get_image", ref, chunk_size=chunk_size))
        request = "GET /images/%s/get HTTP/1.1\r\n" % urllib.parse.quote(ref, safe="")
        return http_wire.rechunked(self._exchange(what, sock, request), chunk_size)

    def load(self, what: str, blocks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        """POST the tar `blocks` to /images/load; the decoded chunks answered."""
        sock = self._work_socket()
        if sock is None:
            return self._stream(what, self._sdk(what, "load_image", blocks))
        request = "POST /images/load HTTP/1.1\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n"
        return http_wire.json_stream(what, self._exchange(what, sock, request, http_wire.chunked(blocks)))

    def remove_image(self, what: str, ref: str, force: bool = False) -> list[dict[str, str]] | None:
        """The engine's list of what it untagged and deleted, or None when it has no such image."""
        removed = self._sdk(what, "remove_image", ref, force=force, noprune=False, missing=None)
        self.forget(ref)
        return None if removed is None else list(removed or [])

    def history(self, what: str, ref: str) -> list[dict[str, Any]] | None:
        return self._sdk(what, "history", ref, missing=None)

    def images(self, what: str, **options: Any) -> list[dict[str, Any]]:
        return self._sdk(what, "images", **options)

    def containers(self, what: str, **options: Any) -> list[dict[str, Any]]:
        return self._sdk(what, "containers", **options)

    def disk_usage(self, what: str) -> dict[str, Any]:
        return self._sdk(what, "df")

    def prune_build_cache(self, what: str, filters: dict[str, str] | None = None) -> int:
        """The bytes the engine freed."""
        return (self._sdk(what, "prune_builds", filters=filters) or {}).get("SpaceReclaimed") or 0

    def create_volume(self, what: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self._sdk(what, "create_volume", name, labels=labels)

    def create_container(self, what: str, image: str, host_config: dict[str, Any] | None = None,
                         **options: Any) -> str:
        """The new container's id; `host_config`: the SDK's create_host_config keywords."""
        if host_config is not None:
            options["host_config"] = self._api.create_host_config(**host_config)
        return self._sdk(what, "create_container", image, **options)["Id"]

    def start_container(self, what: str, container: str) -> None:
        self._sdk(what, "start", container)

    def wait_container(self, what: str, container: str) -> int:
        """The exit status of the container's command, once it ends."""
        return self._sdk(what, "wait", container).get("StatusCode", 1)

    def container_logs(self, what: str, container: str, **options: Any) -> str:
        return self._sdk(what, "logs", container, **options).decode(errors="replace")

    def remove_container(self, what: str, container: str, force: bool = True) -> bool | None:
        """True, or None when there was no such container."""
        removed = self._sdk(what, "remove_container", container, force=force, missing=_GONE)
        return None if removed is _GONE else True

    def commit(self, what: str, container: str, ref: str, message: str | None = None,
               changes: list[str] | None = None) -> str:
        """The new image's id."""
        repository, tag = refs.split_tag(ref)
        image_id = self._sdk(what, "commit", container, repository=repository, tag=tag, message=message,
                             changes=changes)["Id"]
        self.forget(ref)
        return image_id

    def get_archive(self, what: str, container: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]] | None:
        """(tar chunks, stat) of `path` in the container, or None when it has no such path."""
        found = self._sdk(what, "get_archive", container, path, missing=None)
        return None if found is None else (self._stream(what, found[0]), found[1])

    def distribution(self, what, ref, auth_config=None):
        return self._sdk(what, "inspect_distribution", ref, auth_config=auth_config)

    def _sdk(self, what, call, *args, missing=_RAISE, **kwargs):
        """self._api.CALL(...), its errors as StepFailed naming `what`; NotFound gives
        `missing` where one is given."""
        import docker

        try:
            return getattr(self._api, call)(*args, **kwargs)
        except docker.errors.NotFound as err:
            if missing is not _RAISE:
                return missing
            raise self.failure(what, err) from None
        except self.sdk_errors() as err:
            raise self.failure(what, err) from None

    def _stream(self, what, chunks):
        """The items of an SDK stream; errors met while reading it are mapped too."""
        try:
            yield from chunks
        except self.sdk_errors() as err:
            raise self.failure(what, err) from None

    def tls_config(self):
        """The SDK's TLS settings from the files of the context that names this engine
        (used as the docker CLI uses them), or False."""
        tls = _tls_of(self.host)
        if not tls:
            return False
        import docker

        cert = (tls["cert"], tls["key"]) if "cert" in tls and "key" in tls else None
        return docker.tls.TLSConfig(client_cert=cert, ca_cert=tls.get("ca"), verify=tls["verify"])

    @property
    def _api(self):
        """The SDK's low-level client: for this module only, behind the verbs."""
        return self._sdk_client.api

    def sdk_errors(self):
        """The exception types the SDK raises, for `except engine.sdk_errors() as err`."""
        import docker
        import requests

        return (docker.errors.DockerException, requests.exceptions.RequestException)

    def failure(self, what, err):
        """A StepFailed for an SDK error while doing `what`."""
        import requests

        if isinstance(err, requests.exceptions.ConnectionError):
            return self.unreachable(_reason(err))
        return StepFailed("%s: %s" % (what, _reason(err)))


def chain_ids(diff_ids):
    """The engine's chain ids of a layer stack (image-spec: ChainID)."""
    chains = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(("%s %s" % (chains[-1], diff_id)).encode()).hexdigest())
    return chains


_BUILD_OPTIONS = {"tag", "dockerfile", "target", "buildargs", "labels", "cache_from", "pull", "rm", "forcerm"}


def push_request(repository, tag, auth_config):
    """The first lines of POST /images/{name}/push. X-Registry-Auth as the docker CLI
    sends it: base64url of the JSON, `{}` for an anonymous push."""
    auth = base64.urlsafe_b64encode(json.dumps(auth_config or {}).encode()).decode()
    return "POST /images/%s/push?%s HTTP/1.1\r\nX-Registry-Auth: %s\r\nContent-Length: 0\r\n" % (
        urllib.parse.quote(repository, safe=""), urllib.parse.urlencode({"tag": tag}), auth)


def _build_query(options):
    """The /build query the SDK's api.build would send for these keywords."""
    unknown = set(options) - _BUILD_OPTIONS
    if unknown:  # a keyword the socket path would silently drop
        raise TypeError("build options not sent over the socket: %s" % ", ".join(sorted(unknown)))
    query = {"t": options.get("tag"), "dockerfile": options.get("dockerfile"), "target": options.get("target")}
    for name, param in (("buildargs", "buildargs"), ("labels", "labels"), ("cache_from", "cachefrom")):
        if options.get(name):
            query[param] = json.dumps(options[name])
    for flag in ("pull", "rm", "forcerm"):
        query[flag] = "1" if options.get(flag) else "0"
    return {name: value for name, value in query.items() if value is not None}


def _docker_config_matters():
    """True when the docker config the SDK reads (first found of $DOCKER_CONFIG/config.json,
    ~/.docker/config.json, ~/.dockercfg) holds what the SDK adds to requests: registry
    credentials (X-Registry-Config), proxies (as build args) or extra HTTP headers."""
    home = os.path.expanduser("~")
    candidates = [os.path.join(os.environ["DOCKER_CONFIG"], "config.json")] if os.environ.get("DOCKER_CONFIG") else []
    candidates += [os.path.join(home, ".docker", "config.json"), os.path.join(home, ".dockercfg")]
    path = next((candidate for candidate in candidates if os.path.exists(candidate)), None)
    if path is None:
        return False
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return True  # the SDK reads it and says what is wrong
    if not isinstance(config, dict):
        return True
    if any(config.get(key) for key in ("auths", "credsStore", "credHelpers", "proxies", "HttpHeaders")):
        return True
    # the legacy format: registries at the top level, each with its "auth"
    return any(isinstance(value, dict) and "auth" in value for value in config.values())


class _NeedsSdk(Exception):
    """ssh:// and TLS engines: only the SDK speaks those."""


def stream_error(chunk):
    """The error message in one decoded chunk of the daemon's JSON stream (build, push,
    load report failures inside a 200 answer), or None when the chunk is no error."""
    if "error" not in chunk and "errorDetail" not in chunk:
        return None
    return ((chunk.get("errorDetail") or {}).get("message") or chunk.get("error") or "").strip()


def _reason(err):
    """The useful sentence inside an SDK/requests error."""
    explanation = getattr(err, "explanation", None)
    if explanation:
        return explanation if isinstance(explanation, str) else explanation.decode(errors="replace")
    text = str(err)
    for marker in ("Caused by ", "Error while fetching server API version: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")
