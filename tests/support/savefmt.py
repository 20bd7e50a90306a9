"""Turn a legacy `docker save` tar (engine <= 24, the engine of these machines) into the
layouts newer engines write, so save/transfer/load can be tested on each here:

- "legacy": the tar as it is;
- "oci": Engine 25+: `blobs/sha256/<hex>` config and plain layer blobs, index.json
  naming the image manifest, oci-layout, and manifest.json pointing at the blobs;
- "oci-nested": Engine 29 with the containerd image store: index.json -> an image
  index -> the image manifest plus an attestation manifest (unknown/unknown), layers
  as gzip blobs (blob digest != diff_id), manifest.json pointing at those blobs.

Engine 20.10 loads all three: its loader follows manifest.json's paths only.
`digests` of a conversion give the ids an engine with the containerd store would use.
"""
import gzip
import hashlib
import io
import json
import os
import tarfile

LAYOUTS = ("legacy", "oci", "oci-nested")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_PLAIN = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def convert(legacy_path, out_path, layout):
    """Write `legacy_path` in `layout` to `out_path`; the digests of the index and
    manifests written (top first), empty for "legacy"."""
    if layout == "legacy":
        with open(legacy_path, "rb") as source, open(out_path, "wb") as target:
            target.write(source.read())
        return []
    images = _read_legacy(legacy_path)
    blobs = {}  # digest -> bytes, in the order written

    def blob(data, media_type):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs.setdefault(digest, data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    manifest_json, index_entries, digests = [], [], []
    for image in images:
        config = blob(image["config"], OCI_CONFIG)
        if layout == "oci":
            layers = [blob(layer, LAYER_PLAIN) for layer in image["layers"]]
        else:
            layers = [blob(gzip.compress(layer, mtime=0), LAYER_GZIP) for layer in image["layers"]]
        manifest = blob(_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                               "layers": layers}), OCI_MANIFEST)
        top = dict(manifest, platform={"architecture": "amd64", "os": "linux"})
        if layout == "oci-nested":
            attestation = _attestation(blob, manifest["digest"])
            index = blob(_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": [top, attestation]}), OCI_INDEX)
            top = index
            digests.append(index["digest"])
        digests.append(manifest["digest"])
        for tag in image["tags"] or [None]:
            entry = dict(top)
            if tag:
                entry["annotations"] = {"io.containerd.image.name": "docker.io/library/" + tag if "/" not in tag
                                        else "docker.io/" + tag,
                                        "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]}
            index_entries.append(entry)
        manifest_json.append({"Config": _blob_path(config["digest"]), "RepoTags": image["tags"],
                              "Layers": [_blob_path(layer["digest"]) for layer in layers]})
    with tarfile.open(out_path, "w", format=tarfile.PAX_FORMAT) as archive:
        _add_folder(archive, "blobs")
        _add_folder(archive, "blobs/sha256")
        for digest, data in blobs.items():
            _add_file(archive, _blob_path(digest), data)
        _add_file(archive, "index.json", _json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                "manifests": index_entries}))
        _add_file(archive, "manifest.json", _json(manifest_json))
        _add_file(archive, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    return digests


def _attestation(blob, subject_digest):
    """An attestation manifest as BuildKit adds beside an image (platform unknown/unknown)."""
    statement = blob(_json({"_type": "https://in-toto.io/Statement/v0.1", "predicate": {}}),
                     "application/vnd.in-toto+json")
    config = blob(_json({"architecture": "unknown", "os": "unknown", "rootfs": {"type": "layers",
                                                                                "diff_ids": [statement["digest"]]}}),
                  OCI_CONFIG)
    manifest = blob(_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                           "layers": [statement]}), OCI_MANIFEST)
    return dict(manifest, platform={"architecture": "unknown", "os": "unknown"},
                annotations={"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": subject_digest})


def _read_legacy(path):
    """[{config bytes, layers: [layer tar bytes], tags}] of a legacy save tar."""
    with tarfile.open(path) as archive:
        def read(name):
            member = archive.getmember(name)
            while member.issym():  # a layer met twice is a link to the first copy
                member = archive.getmember(os.path.normpath(os.path.join(os.path.dirname(member.name),
                                                                         member.linkname)))
            return archive.extractfile(member).read()

        return [{"config": read(entry["Config"]), "layers": [read(layer) for layer in entry["Layers"]],
                 "tags": entry.get("RepoTags") or []}
                for entry in json.loads(read("manifest.json"))]


def _blob_path(digest):
    return "blobs/" + digest.replace(":", "/", 1)


def _json(value):
    return json.dumps(value, separators=(",", ":")).encode()


def _add_folder(archive, name):
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    archive.addfile(info)


def _add_file(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))
