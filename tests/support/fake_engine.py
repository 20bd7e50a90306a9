"""A fake Docker engine behind the verbs of tasks/engine.py's Engine, for fast tests of
each step kind's decisions (community.docker's tests/unit/.../fake_api.py is the model).

It holds images, containers and volumes in dicts and answers in the shapes the engine
gives: an image's inspect dict has Id, RepoTags, RepoDigests, Parent, Created (RFC 3339),
Size, Config.Labels/Cmd and RootFS.Layers; the listings (images, containers) the shapes
of GET /images/json and /containers/json. An image's id is the sha256 of its config, as
the engine's: a layer is a small tar whose sha256 is its diff_id, so `save` writes a
legacy `docker save` tar whose config id is the image's id, which tasks/imagetar.py
reads as it reads the real engine's.

Where the real Engine's decision is pure logic over what the engine answered
(image_id from image_summary, registry_is_insecure from info, distribution_digest from
distribution), the fake runs that same code over its own answers. Every verb called
is recorded in `calls` as (verb, first arguments...).

What it does not claim: Docker's behaviour. The real-engine tests (tests/steps/test_*.py
without `_decisions`) prove that; this fake keeps the edit-test loop short.
"""
import datetime
import hashlib
import io
import json
import os
import shlex
import tarfile

import pytest

from tasks import engine, imagetar, refs
from tasks.errors import EngineUnreachable, StepFailed
from tasks.runstate import RUN
from tests.test_registry_api import server as _one_registry

# Steps without docker_host talk to this address; nothing listens there, so a lookup
# that slips past the fake fails loudly instead of reaching a real engine.
FAKE_HOST = "unix:///nonexistent/dockflow-fake-engine.sock"
NOW = 1_700_000_000  # the fake's clock: Created of images and containers, in seconds


class _NoSdkError(Exception):
    """What sdk_errors() names: the fake raises StepFailed itself, never an SDK error."""


def layer_blob(name):
    """A layer as the engine keeps it: an uncompressed tar (of one file `name`); its
    sha256 is the layer's diff_id."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        data = name.encode()
        info = tarfile.TarInfo("layers/" + hashlib.sha256(data).hexdigest()[:16])
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _iso(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000000Z")


def _familiar(ref):
    """A tag as the engine lists it in RepoTags: `lab/app:1`, `localhost:5000/lab/app:1`."""
    name, tag = refs.split_tag(ref)
    return "%s:%s" % (name, tag)


def _labels_from_changes(changes):
    """The LABEL instructions of `docker commit/import --change` lines, as a dict."""
    labels = {}
    for change in changes or ():
        words = shlex.split(change)
        if words and words[0].upper() == "LABEL":
            for pair in words[1:]:
                key, _, value = pair.partition("=")
                labels[key] = value
    return labels


def _cmd_from_changes(changes):
    for change in changes or ():
        if change.upper().startswith("CMD "):
            return json.loads(change[4:])
    return None


class FakeEngine:
    """One engine at `host`. Tests arrange it with add_image / add_container and read
    `calls` afterwards; steps use the Engine's verbs."""

    def __init__(self, host=FAKE_HOST):
        self.host = host
        self.image_store = {}       # id -> inspect dict
        self.container_store = {}   # id -> inspect dict
        self.volumes = {}      # name -> volume dict
        self.blobs = {}        # diff_id -> layer tar bytes
        self.files = {}        # image id -> {path in the image: bytes} (get_archive)
        self.logs = {}         # container id -> its output
        self.calls = []
        self.build_cache = []  # disk_usage()["BuildCache"]
        # The registry as the engine sees it (push writes it, distribution reads it):
        # normalised ref -> manifest digest. `registry_reachable`: False, and
        # distribution answers as an engine whose registry is down.
        self.registry = {}
        self.registry_reachable = True
        self.offered = {}  # manifest digest -> layer names of the image a pull fetches (offer)
        # GET /info: the defaults of a fresh dockerd (127.0.0.0/8 is insecure).
        self.info_answer = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
                            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"]}}
        # What a started container's command does: container inspect dict -> (exit code, output).
        self.run_command = lambda container: (0, "")
        self.build_error = None  # a message the next build reports inside its stream
        # An engine without BuildKit: a build asked of it refuses with this message.
        self.buildkit_refusal = None
        # False: the SDK would send the work (a docker config with credentials, a TLS engine).
        self.plain = True
        self.push_error = None   # likewise for push

    def _record(self, verb, *args):
        self.calls.append((verb,) + args)

    def verbs(self):
        """The names of the verbs called so far, in order."""
        return [call[0] for call in self.calls]

    # --- arranging ----------------------------------------------------------
    def add_image(self, tags=(), layers=("base",), labels=None, created=NOW, digests=(), parent="",
                  cmd=None, image_id=None, files=None, size=None):
        """An image made of the named layers; its id, the sha256 of its config unless
        `image_id` is given (an id the engine's containerd store would use, say)."""
        diff_ids = []
        for name in layers:
            blob = layer_blob(name)
            self.blobs[sha256(blob)] = blob
            diff_ids.append(sha256(blob))
        config = {"architecture": "amd64", "os": "linux", "created": _iso(created),
                  "config": {"Labels": dict(labels or {}) or None, "Cmd": cmd},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        config_bytes = json.dumps(config, sort_keys=True).encode()
        new_id = image_id or sha256(config_bytes)
        for ref in tags:
            self._untag_everywhere(ref)
        self.image_store[new_id] = {
            "Id": new_id,
            "RepoTags": [_familiar(ref) for ref in tags],
            "RepoDigests": list(digests),
            "Parent": parent,
            "Created": _iso(created),
            "Size": size if size is not None else sum(len(self.blobs[d]) for d in diff_ids),
            "Config": {"Labels": dict(labels or {}) or None, "Cmd": cmd},
            "RootFS": {"Type": "layers", "Layers": diff_ids},
            "_created": created,          # seconds, for the listings
            "_config": config_bytes,      # what `save` writes as <id>.json
        }
        self.files[new_id] = dict(self.files.get(parent, {}), **(files or {}))
        return new_id

    def offer(self, ref, layers):
        """The registry, as this engine sees it, holds an image of these layers under `ref`;
        its manifest digest (what pull and distribution answer)."""
        digest = sha256(json.dumps([ref, list(layers)]).encode())
        self.registry[refs.normalize(ref)] = digest
        self.offered[digest] = list(layers)
        return digest

    def add_container(self, image_id, name=None, state="running", labels=None, created=NOW, command=None,
                      size_rw=0):
        container_id = hashlib.sha256(("container %d %s" % (len(self.container_store), name)).encode()).hexdigest()
        self.container_store[container_id] = {
            "Id": container_id,
            "Name": "/" + (name or "c" + container_id[:8]),
            "Created": _iso(created),
            "Image": image_id,
            "State": {"Status": state, "Running": state == "running", "ExitCode": 0},
            "Config": {"Image": image_id, "Labels": dict(labels or {}), "Cmd": command},
            "HostConfig": {},
            "_created": created,
            "_size_rw": size_rw,
        }
        return container_id

    # --- lookups as the engine resolves a reference -------------------------
    def _find_image(self, ref):
        if ref in self.image_store:
            return self.image_store[ref]
        if "sha256:" + ref in self.image_store:
            return self.image_store["sha256:" + ref]
        if "@" in ref:
            return next((image for image in self.image_store.values() if ref in image["RepoDigests"]), None)
        if refs.is_valid(ref):
            wanted = refs.normalize(ref)
            for image in self.image_store.values():
                if wanted in {refs.normalize(tag) for tag in image["RepoTags"]}:
                    return image
        hex_part = ref[7:] if ref.startswith("sha256:") else ref
        if len(hex_part) >= 12 and all(c in "0123456789abcdef" for c in hex_part):
            found = [image for image_id, image in self.image_store.items() if image_id[7:].startswith(hex_part)]
            if len(found) == 1:
                return found[0]
        return None

    def _find_container(self, name_or_id):
        for container in self.container_store.values():
            if name_or_id in (container["Id"], container["Name"].lstrip("/")) \
                    or (len(name_or_id) >= 12 and container["Id"].startswith(name_or_id)):
                return container
        return None

    def _untag_everywhere(self, ref):
        wanted = refs.normalize(ref)
        for image in self.image_store.values():
            image["RepoTags"] = [tag for tag in image["RepoTags"] if refs.normalize(tag) != wanted]

    @staticmethod
    def _public(record):
        """A copy without the fake's own keys (those starting with _)."""
        return json.loads(json.dumps({key: value for key, value in record.items() if not key.startswith("_")}))

    # --- cheap reads ----------------------------------------------------------
    def inspect_image(self, ref):
        self._record("inspect_image", ref)
        image = self._find_image(ref)
        return None if image is None else self._public(image)

    def image_summary(self, ref):
        self._record("image_summary", ref)
        image = self._find_image(ref)
        return None if image is None else {"Id": image["Id"], "Labels": dict(image["Config"]["Labels"] or {})}

    # The Engine's own logic over the fake's answers.
    image_id = engine.Engine.image_id
    image_labels = engine.Engine.image_labels
    registry_is_insecure = engine.Engine.registry_is_insecure
    distribution_digest = engine.Engine.distribution_digest
    uses_containerd_store = engine.Engine.uses_containerd_store

    def inspect_container(self, name):
        self._record("inspect_container", name)
        container = self._find_container(name)
        return None if container is None else self._public(container)

    def info(self):
        self._record("info")
        return json.loads(json.dumps(self.info_answer))

    def layer_chains(self):
        self._record("layer_chains")
        return {chain for image in self.image_store.values() for chain in imagetar.chain_ids(image["RootFS"]["Layers"])}

    def forget(self, ref=None):
        self._record("forget", ref)

    def ping(self):
        return True

    def close(self):
        pass

    # --- work -------------------------------------------------------------------
    def tag(self, what, image_id, ref):
        self._record("tag", image_id, ref)
        image = self._require_image(what, image_id)
        self._untag_everywhere(ref)
        image["RepoTags"].append(_familiar(ref))

    def push(self, what, ref, auth_config=None):
        self._record("push", ref)
        image = self._require_image(what, ref)
        return self._push_stream(image, ref)

    def _push_stream(self, image, ref):
        name, tag = refs.split_tag(ref)
        yield {"status": "The push refers to repository [%s]" % name}
        if self.push_error:
            yield {"errorDetail": {"message": self.push_error}, "error": self.push_error}
            return
        for diff_id in image["RootFS"]["Layers"]:
            yield {"status": "Pushed", "id": diff_id[7:19], "progressDetail": {}}
        manifest = json.dumps({"schemaVersion": 2, "config": {"digest": image["Id"]},
                               "layers": image["RootFS"]["Layers"]}).encode()
        digest = sha256(manifest)
        self.registry[refs.normalize(ref)] = digest
        if "%s@%s" % (name, digest) not in image["RepoDigests"]:
            image["RepoDigests"].append("%s@%s" % (name, digest))
        yield {"status": "%s: digest: %s size: %d" % (tag, digest, len(manifest))}
        yield {"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest)}}

    def distribution(self, what, ref, auth_config=None):
        self._record("distribution", ref)
        if not self.registry_reachable:
            raise StepFailed("%s: Get \"https://%s/v2/\": dial tcp: connect: connection refused"
                             % (what, refs.parse(ref).registry))
        digest = self.registry.get(refs.normalize(ref))
        if digest is None:
            raise StepFailed("%s: manifest unknown" % what)
        return {"Descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "digest": digest, "size": 500}, "Platforms": []}

    def pull(self, what, ref, auth_config=None):
        """docker pull of an image the registry holds (offer): its layers fetched but for
        those the engine has, then tagged, with name@digest among its RepoDigests."""
        self._record("pull", ref, auth_config)
        self.distribution(what, ref, auth_config)  # a registry that is down or lacks the tag
        return self._pull_stream(ref, self.registry[refs.normalize(ref)])

    def _pull_stream(self, ref, digest):
        name, tag = refs.split_tag(ref)
        yield {"status": "Pulling from %s" % name, "id": tag}
        held = self.layer_chains()
        layers = self.offered[digest]
        image_id = self.add_image([ref], layers=layers, digests=["%s@%s" % (name, digest)])
        for diff_id, chain in zip(self.image_store[image_id]["RootFS"]["Layers"],
                                  imagetar.chain_ids(self.image_store[image_id]["RootFS"]["Layers"])):
            if chain in held:
                yield {"status": "Already exists", "progressDetail": {}, "id": diff_id[7:19]}
            else:
                size = len(self.blobs[diff_id])
                yield {"status": "Downloading", "progressDetail": {"current": size, "total": size},
                       "id": diff_id[7:19]}
                yield {"status": "Pull complete", "progressDetail": {}, "id": diff_id[7:19]}
        yield {"status": "Digest: %s" % digest}
        yield {"status": "Status: Downloaded newer image for %s" % ref}

    def save(self, what, ref, chunk_size):
        """A legacy `docker save REF` tar (engine 20.10's layout), chunk by chunk."""
        self._record("save", ref)
        return self._chunks(self._legacy_tar([self._saved_entry(what, ref)]), chunk_size)

    def save_many(self, what, names, chunk_size):
        """`docker save NAME NAME...`: one tar of every image named, each once, with the
        names that are its tags (images.get with several names, which the Engine lacks)."""
        self._record("save_many", list(names))
        entries = {}  # image id -> (image, its tags named), in the order named
        for name in names:
            image, tags = self._saved_entry(what, name)
            entries.setdefault(image["Id"], (image, []))[1].extend(t for t in tags if t not in entries[image["Id"]][1])
        return self._chunks(self._legacy_tar(list(entries.values())), chunk_size)

    @staticmethod
    def _chunks(data, chunk_size):
        return (data[start:start + chunk_size] for start in range(0, len(data), chunk_size))

    def _saved_entry(self, what, ref):
        """(image, [its tag]) of one name given to docker save: an image named by its id (or by
        name@digest) is saved untagged, as the engine saves it (RepoTags null)."""
        image = self._require_image(what, ref)
        by_tag = refs.is_valid(ref) and "@" not in ref and \
            refs.normalize(ref) in {refs.normalize(tag) for tag in image["RepoTags"]}
        return image, [_familiar(ref)] if by_tag else []

    def _legacy_tar(self, entries):
        """A legacy save tar of [(image, tags)]: a layer folder for each chain (once), each
        image's config, and manifest.json in the order given."""
        out = io.BytesIO()
        written, manifest = set(), []
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as archive:
            def add(name, data):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))

            for image, tags in entries:
                folders = []
                for diff_id, chain in zip(image["RootFS"]["Layers"], imagetar.chain_ids(image["RootFS"]["Layers"])):
                    folder = hashlib.sha256(chain.encode()).hexdigest()
                    folders.append(folder)
                    if folder not in written:
                        written.add(folder)
                        add(folder + "/layer.tar", self.blobs[diff_id])
                        add(folder + "/VERSION", b"1.0")
                add(image["Id"][7:] + ".json", image["_config"])
                manifest.append({"Config": image["Id"][7:] + ".json", "RepoTags": tags,
                                 "Layers": [f + "/layer.tar" for f in folders]})
            add("manifest.json", json.dumps(manifest).encode())
        return out.getvalue()

    def load(self, what, blocks):
        """POST /images/load of a legacy or OCI save tar: each image of its manifest.json
        lands under its config id and tags; a layer the tar leaves out must be one the
        engine holds (as a target that got only the missing layers)."""
        self._record("load")
        data = b"".join(blocks)
        return self._load_stream(data)

    def _load_stream(self, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            members = {os.path.normpath(m.name): m for m in archive.getmembers()}

            def read(name):
                return archive.extractfile(members[os.path.normpath(name)]).read()

            held = self.layer_chains()
            for entry in json.loads(read("manifest.json")):
                config_bytes = read(entry["Config"])
                diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
                for layer, chain in zip(entry["Layers"], imagetar.chain_ids(diff_ids)):
                    if os.path.normpath(layer) not in members and chain not in held:
                        message = "open %s: no such file or directory" % layer
                        yield {"errorDetail": {"message": message}, "error": message}
                        return
                image_id = sha256(config_bytes)
                if image_id not in self.image_store:
                    self.image_store[image_id] = {
                        "Id": image_id, "RepoTags": [], "RepoDigests": [], "Parent": "", "Created": _iso(NOW),
                        "Size": 0, "Config": json.loads(config_bytes).get("config") or {"Labels": None, "Cmd": None},
                        "RootFS": {"Type": "layers", "Layers": diff_ids}, "_created": NOW, "_config": config_bytes}
                for tag in entry.get("RepoTags") or []:
                    self._untag_everywhere(tag)
                    self.image_store[image_id]["RepoTags"].append(tag)
                    yield {"stream": "Loaded image: %s\n" % tag}
                if not entry.get("RepoTags"):
                    yield {"stream": "Loaded image ID: %s\n" % image_id}

    def remove_image(self, what, ref, force=False):
        self._record("remove_image", ref)
        image = self._find_image(ref)
        if image is None:
            return None
        if ref not in self.image_store and len(image["RepoTags"]) > 1 and refs.is_valid(ref):
            self._untag_everywhere(ref)  # one name of several: only the name goes
            return [{"Untagged": ref}]
        users = [c for c in self.container_store.values() if c["Image"] == image["Id"]]
        if users and not force:
            raise StepFailed("%s: conflict: unable to remove repository reference %r (must force) - container "
                             "%s is using its referenced image %s"
                             % (what, ref, users[0]["Id"][:12], image["Id"][7:19]))
        if any(other["Parent"] == image["Id"] for other in self.image_store.values()):
            raise StepFailed("%s: conflict: unable to delete %s (cannot be forced) - image has dependent child "
                             "images" % (what, image["Id"][7:19]))
        del self.image_store[image["Id"]]
        return [{"Untagged": tag} for tag in image["RepoTags"]] + [{"Deleted": image["Id"]}]

    def history(self, what, ref):
        self._record("history", ref)
        image, rows = self._find_image(ref), []
        while image is not None:
            rows.append({"Id": image["Id"], "Created": image["_created"], "CreatedBy": "",
                         "Tags": image["RepoTags"] or None, "Size": image["Size"], "Comment": ""})
            image = self.image_store.get(image["Parent"])
        return rows or None

    def images(self, what, all=False, filters=None, name=None):  # noqa: A002 (the SDK's keyword)
        self._record("images", dict(all=all, filters=filters, name=name))
        filters = dict(filters or {})
        dangling = filters.pop("dangling", None)
        labels = filters.pop("label", [])
        if filters:
            raise NotImplementedError("the fake engine's images() has no filter %s" % ", ".join(filters))
        parents = {image["Parent"] for image in self.image_store.values()}
        found = []
        for image in self.image_store.values():
            tags = image["RepoTags"]
            if not all and not tags and image["Id"] in parents:
                continue  # an intermediate image: listed with all=True only
            if dangling is not None and _truthy(dangling) != (not tags):
                continue
            if name is not None and not any(refs.parse(tag).name == refs.parse(name).name for tag in tags):
                continue
            if not _labels_match(image["Config"]["Labels"] or {}, labels):
                continue
            found.append({"Id": image["Id"], "ParentId": image["Parent"], "RepoTags": list(tags),
                          "RepoDigests": list(image["RepoDigests"]), "Created": image["_created"],
                          "Size": image["Size"], "SharedSize": -1, "VirtualSize": image["Size"],
                          "Labels": dict(image["Config"]["Labels"] or {}), "Containers": -1})
        return found

    def containers(self, what, all=False, size=False, filters=None):  # noqa: A002
        self._record("containers", dict(all=all, size=size, filters=filters))
        filters = dict(filters or {})
        labels = filters.pop("label", [])
        statuses = filters.pop("status", [])
        if filters:
            raise NotImplementedError("the fake engine's containers() has no filter %s" % ", ".join(filters))
        found = []
        for container in self.container_store.values():
            state = container["State"]["Status"]
            if not all and state != "running":
                continue
            if statuses and state not in ([statuses] if isinstance(statuses, str) else statuses):
                continue
            if not _labels_match(container["Config"]["Labels"], labels):
                continue
            listed = {"Id": container["Id"], "Names": [container["Name"]], "Image": container["Config"]["Image"],
                      "ImageID": container["Image"], "Command": " ".join(container["Config"]["Cmd"] or []),
                      "Created": container["_created"], "State": state, "Status": state,
                      "Labels": dict(container["Config"]["Labels"])}
            if size:
                listed["SizeRw"] = container["_size_rw"]
            found.append(listed)
        return found

    def disk_usage(self, what):
        self._record("disk_usage")
        return {"Images": self.images(what, all=True), "Containers": self.containers(what, all=True, size=True),
                "Volumes": list(self.volumes.values()), "BuildCache": list(self.build_cache)}

    def prune_build_cache(self, what, filters=None):
        self._record("prune_build_cache", filters)
        freed = [entry for entry in self.build_cache if not entry.get("InUse")]
        self.build_cache = [entry for entry in self.build_cache if entry.get("InUse")]
        return sum(entry.get("Size") or 0 for entry in freed)

    def create_volume(self, what, name, labels=None):
        self._record("create_volume", name)
        return self.volumes.setdefault(name, {"Name": name, "Driver": "local", "Labels": labels or {},
                                              "Mountpoint": "/var/lib/docker/volumes/%s/_data" % name})

    def create_container(self, what, image, host_config=None, **options):
        self._record("create_container", image, options)
        source = self._require_image(what, image)
        name = options.get("name")
        if name and self._find_container(name):
            raise StepFailed('%s: Conflict. The container name "/%s" is already in use' % (what, name))
        container_id = self.add_container(source["Id"], name=name, state="created", labels=options.get("labels"),
                                          command=options.get("command"))
        self.container_store[container_id]["HostConfig"] = host_config or {}
        self.container_store[container_id]["Config"]["Env"] = options.get("environment")
        return container_id

    def start_container(self, what, container):
        self._record("start_container", container)
        found = self._require_container(what, container)
        found["State"].update(Status="running", Running=True)

    def wait_container(self, what, container):
        """Runs the container's command (`run_command`) to its end."""
        self._record("wait_container", container)
        found = self._require_container(what, container)
        status, output = self.run_command(self._public(found))
        self.logs[found["Id"]] = output
        found["State"].update(Status="exited", Running=False, ExitCode=status)
        return status

    def container_logs(self, what, container, **options):
        self._record("container_logs", container)
        lines = self.logs.get(self._require_container(what, container)["Id"], "").splitlines(keepends=True)
        return "".join(lines[-options["tail"]:] if options.get("tail") else lines)

    def remove_container(self, what, container, force=True):
        self._record("remove_container", container)
        found = self._find_container(container)
        if found is None:
            return None
        if found["State"]["Running"] and not force:
            raise StepFailed("%s: You cannot remove a running container %s. Stop the container before "
                             "attempting removal or force remove" % (what, found["Id"]))
        del self.container_store[found["Id"]]
        return True

    def commit(self, what, container, ref, message=None, changes=None):
        self._record("commit", container, ref)
        found = self._require_container(what, container)
        source = self.image_store[found["Image"]]
        labels = dict(source["Config"]["Labels"] or {}, **_labels_from_changes(changes))
        layer_names = [self._layer_name(d) for d in source["RootFS"]["Layers"]] + ["container " + found["Id"]]
        # As docker commit: the image's CMD is the container's command unless a change sets it.
        cmd = _cmd_from_changes(changes)
        return self.add_image([ref], layer_names, labels=labels, parent=source["Id"],
                              cmd=cmd if cmd is not None else found["Config"]["Cmd"] or source["Config"]["Cmd"])

    def _layer_name(self, diff_id):
        """The name a layer blob was made from (layer_blob's one file holds it)."""
        with tarfile.open(fileobj=io.BytesIO(self.blobs[diff_id])) as archive:
            member = archive.next()
            return archive.extractfile(member).read().decode()

    def get_archive(self, what, container, path):
        self._record("get_archive", container, path)
        found = self._require_container(what, container)
        data = self.files.get(found["Image"], {}).get(path)
        if data is None:
            return None
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as archive:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
        stat = {"name": os.path.basename(path), "size": len(data), "mode": 0o644, "mtime": _iso(NOW),
                "linkTarget": ""}
        return iter([out.getvalue()]), stat

    def sends_work_plain(self):
        return self.plain

    def build(self, what, context_tar, buildkit=False, **options):
        """The image of a build: its base's layers (the first FROM) plus one layer for
        the context's bytes and the options; the chunks of the engine's stream (the
        legacy builder's words, whichever builder is asked)."""
        self._record("build", options, buildkit)
        return self._build_stream(what, context_tar.read(), options, buildkit)

    def _build_stream(self, what, context, options, buildkit):
        if buildkit and self.buildkit_refusal:  # as the engine's answer: a 400, no stream
            raise StepFailed("%s: %s" % (what, self.buildkit_refusal))
        with tarfile.open(fileobj=io.BytesIO(context)) as archive:
            dockerfile = archive.extractfile(options.get("dockerfile") or "Dockerfile").read().decode()
        base_ref = next((line.split()[1] for line in dockerfile.splitlines()
                         if line.split()[:1] and line.split()[0].upper() == "FROM"), "scratch")
        yield {"stream": "Step 1/2 : FROM %s\n" % base_ref}
        base = None if base_ref == "scratch" else self._find_image(base_ref)
        if base_ref != "scratch" and base is None:
            message = "pull access denied for %s, repository does not exist" % base_ref
            yield {"errorDetail": {"message": message}, "error": message}
            return
        if self.build_error:
            yield {"stream": "Step 2/2 : RUN false\n"}
            yield {"errorDetail": {"message": self.build_error}, "error": self.build_error}
            return
        layer_names = [self._layer_name(d) for d in base["RootFS"]["Layers"]] if base else []
        labels = dict((base["Config"]["Labels"] or {}) if base else {}, **(options.get("labels") or {}))
        new_id = self.add_image([options["tag"]], layer_names + ["build " + sha256(
            context + json.dumps(options, sort_keys=True, default=str).encode())], labels=labels,
            parent=base["Id"] if base else "")
        yield {"stream": "Step 2/2 : COPY . /\n"}
        yield {"aux": {"ID": new_id}}
        yield {"stream": "Successfully built %s\n" % new_id[7:19]}

    def import_image(self, what, rootfs_tar, repository, tag, changes):
        self._record("import_image", repository, tag)
        rootfs = rootfs_tar.read()
        self.add_image(["%s:%s" % (repository, tag)], ["import " + sha256(rootfs)],
                       labels=_labels_from_changes(changes), cmd=_cmd_from_changes(changes),
                       files=_regular_files(rootfs))

    # --- errors, as the Engine maps them ------------------------------------------
    def sdk_errors(self):
        return (_NoSdkError,)

    def failure(self, what, err):
        return StepFailed("%s: %s" % (what, err))

    def unreachable(self, why):
        return EngineUnreachable("cannot reach the Docker engine at %s (%s)" % (self.host, why))

    def tls_config(self):
        return False  # the fake is spoken to in-process: no TLS

    def _require_image(self, what, ref):
        image = self._find_image(ref)
        if image is None:
            raise StepFailed("%s: No such image: %s" % (what, ref))
        return image

    def _require_container(self, what, container):
        found = self._find_container(container)
        if found is None:
            raise StepFailed("%s: No such container: %s" % (what, container))
        return found


def _regular_files(tar_bytes):
    """{path in the image: bytes} of a root filesystem tar's regular files (what get_archive serves)."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as archive:
        for member in archive.getmembers():
            if member.isreg():
                files["/" + os.path.normpath(member.name).lstrip("/")] = archive.extractfile(member).read()
    return files


def _truthy(value):
    return str(value).lower() in ("1", "true")


def _labels_match(labels, wanted):
    """The engine's label filter: every `key` or `key=value` holds."""
    for text in [wanted] if isinstance(wanted, str) else wanted:
        key, sep, value = text.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def out_of_date(kind, step, saved=None):
    """The Verdict of the step kind module `kind` on `step`; the test fails if it is up to date."""
    verdict = kind.check(step, saved or {})
    assert not verdict.current, "%s: up to date, where a reason to run it was expected" % step.name
    return verdict


def install(monkeypatch, host=FAKE_HOST):
    """A FakeEngine for `host`, which engine.get / engine.for_step then return; FAKE_HOST
    also becomes the default engine (DOCKER_HOST) for steps without docker_host."""
    fake = FakeEngine(host)
    if host == FAKE_HOST:
        monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.setitem(RUN.engines, host, fake)
    return fake


class FlowProject:
    """A throwaway project folder whose workflow is loaded in-process (no doit, no
    subprocess): `steps(yaml)` writes workflows/flow.yaml and returns its Steps."""

    def __init__(self, root):
        self.root = root
        self.cache_dir = os.path.join(root, ".dockflow", "cache")

    def path(self, relpath):
        return os.path.join(self.root, relpath)

    def write(self, relpath, content):
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
        return path

    def steps(self, text, **override):
        """The Steps of `text` as workflows/flow.yaml (`override`: name=value of the command line)."""
        import textwrap

        from tasks import workflow
        from tasks.project import Project

        path = self.write("workflows/flow.yaml", textwrap.dedent(text))
        loaded = workflow.load_file(path, self.cache_dir, override.get if override else None)
        loaded.project = Project(self.root)  # as Project.load hands it down
        loaded.project.steps = dict(loaded.steps)
        return loaded.steps


@pytest.fixture
def fake_engine(monkeypatch):
    """The default engine of this test, faked (see install)."""
    return install(monkeypatch)


@pytest.fixture
def flow(tmp_path, monkeypatch):
    """A FlowProject in tmp_path, the current folder, as the project of this run: the
    cache files steps keep (.dockflow/cache) go there, and no docker config is read."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # no stored credentials
    return FlowProject(str(tmp_path))


# The registry side: tests/test_registry_api.py's small HTTP server with canned answers,
# one per test module (its shutdown polls every 0.5 s), emptied for each test.
_module_registry = pytest.fixture(scope="module", name="_module_registry")(_one_registry.__wrapped__)


@pytest.fixture
def canned_registry(_module_registry):
    """(address, routes, seen) of an HTTP registry on loopback: routes maps a path to
    the (status, headers, body) it answers (404 for any other); seen lists the requests."""
    address, routes, seen = _module_registry
    routes.clear()
    seen.clear()
    return _module_registry


@pytest.fixture
def files_hashed(monkeypatch):
    """The paths whose content a check reads to hash it (digest.sha256_file), in order:
    a decision that trusts recorded stats reads none."""
    from tasks import digest

    hashed = []

    def recording(path):
        hashed.append(path)
        return real(path)

    real = digest.sha256_file
    monkeypatch.setattr(digest, "sha256_file", recording)
    return hashed


def lose_tar_hashes(flow, monkeypatch):
    """The project's cache of tar hashes (.dockflow/cache/tar-hashes.json) gone, on disk and
    in this run's memory: only a step's own record can then spare reading a tar."""
    os.unlink(os.path.join(flow.cache_dir, "tar-hashes.json"))
    monkeypatch.setattr(RUN, "tars", {})


def write_saved_tar(flow, engine_, names, relpath="out/app.tar"):
    """`relpath` and its checksum file, as a save of `docker save NAMES...` from `engine_`
    (a FakeEngine) writes them; the tar's path."""
    path = flow.write(relpath, b"".join(engine_.save_many("save", names, 1 << 16)))
    imagetar.write_sidecar(path, imagetar.cached_sha256(path, flow.cache_dir)[0])
    return path


def forbid_opening_tars(monkeypatch):
    """A check that reads a tar's index (imagetar.ImageTar) from now on fails the test:
    for the decisions a record must spare a large tar's reading."""
    def opened(path):
        raise AssertionError("the tar's index was read: %s" % path)

    monkeypatch.setattr(imagetar, "ImageTar", opened)
