"""Image tars as `docker save` writes them, and the sha256 file beside them.

`manifest.json` names each image's config, tags and layer members in order; the
config's `rootfs.diff_ids` give each layer's chain id, the key under which an engine
keeps a layer: a layer whose chain id the target already has need not be shipped
(measured on engine 20.10: `docker load` skips a layer whose chain it already has
without opening its file). The three layouts engines write are described at ImageTar.
"""
import json
import os
import threading

from .digest import files_digest, stat_key
from .engine import chain_ids  # noqa: F401 (a tar's layers are keyed as the engine keys them)
from .errors import StepFailed
from .files import read_cache, write_atomic, write_cache
from .runstate import RUN

BLOCK = 512


def sidecar_path(tar_path):
    return tar_path + ".sha256"


def write_sidecar(tar_path, sha256):
    """`<sha256>  <name>` as sha256sum writes it, so `sha256sum -c` checks it too."""
    write_atomic(sidecar_path(tar_path), ("%s  %s\n" % (sha256, os.path.basename(tar_path))).encode())


def read_sidecar(tar_path):
    """The sha256 recorded beside the tar, or None when there is no readable one."""
    try:
        with open(sidecar_path(tar_path), encoding="ascii") as handle:
            words = handle.read().split()
    except (OSError, UnicodeDecodeError):
        return None
    return words[0] if words and _is_sha256(words[0]) else None


def _is_sha256(text):
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def cached_sha256(path, cache_dir, saved_stats=None):
    """(sha256, stats) of one file; the sha is reused while size, ctime, inode and mode
    are those in `saved_stats` (a no-op run does not re-read a 1 GiB tar), or those
    another step recorded for that tar in the project whose cache folder is `cache_dir`."""
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    known = _known_tars(cache_dir)
    if not _describes(path, (saved_stats or {}).get(name)):
        # No record of the step's own, or one of an older file (a previous run's tar):
        # the record of the step that wrote this one spares reading it again. That step
        # may have run in another process since this one read the records (save in a
        # worker of doit -n N): they are read again rather than the tar.
        if not _describes(path, known.get(path)):
            RUN.tars.pop(_tar_hashes_path(cache_dir), None)
            known = _known_tars(cache_dir)
        if path in known:
            saved_stats = {name: known[path]}
    _, stats = files_digest(folder, [name], saved_stats)
    if stats[name] != (saved_stats or {}).get(name):  # learnt now: the other steps may use it
        _remember_tar(cache_dir, path, stats[name])
    return stats[name][4], stats


def _describes(path, entry):
    """Is `entry` (stats as files_digest keeps them) the record of the file at `path` now?"""
    return isinstance(entry, list) and entry[:4] == stat_key(os.lstat(path))


def known_sha256(path, sha256, cache_dir):
    """The stats cached_sha256 keeps, for a file whose sha256 was computed while writing
    it; kept for the project's other steps too."""
    path = os.path.abspath(path)
    entry = stat_key(os.lstat(path)) + [sha256]
    _remember_tar(cache_dir, path, entry)
    return {os.path.basename(path): entry}


# Save learns a tar's sha256 while writing it; transfer and load would each read the
# whole tar again to learn it (2 s for 1 GiB). So the stats of every tar hashed here
# are kept for the project's other steps: .dockflow/cache/tar-hashes.json, read once a
# run (runstate.RUN.tars).
_tars_lock = threading.Lock()  # `doit -P thread`: two steps must not write the file at once


def _tar_hashes_path(cache_dir):
    return os.path.join(cache_dir, "tar-hashes.json")


def _known_tars(cache_dir):
    hashes_path = _tar_hashes_path(cache_dir)
    if hashes_path not in RUN.tars:
        # Any entry may be damaged: keep only the exact shape written here.
        RUN.tars[hashes_path] = {path: stats for path, stats in read_cache(hashes_path).items()
                                 if _is_tar_stats(stats)}
    return RUN.tars[hashes_path]


def _is_tar_stats(stats):
    return isinstance(stats, list) and len(stats) == 5 and _is_sha256(stats[4])


def _remember_tar(cache_dir, path, stats):
    with _tars_lock:
        known = _known_tars(cache_dir)
        if known.get(path) == stats:
            return
        known[path] = stats
        for gone in [p for p in known if not os.path.lexists(p)]:  # tars of old versions
            del known[gone]
        write_cache(_tar_hashes_path(cache_dir), known)


def is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


# The layouts `docker save` writes. All three carry manifest.json, which every
# engine's loader reads (engine 20.10 reads nothing else):
# - legacy (engines up to 24): `<config hex>.json`, layers `<v1 id>/layer.tar`;
# - OCI (engine 25+): also index.json and oci-layout; config and layers are
#   `blobs/sha256/<hex>`, layers plain, so a layer's blob digest is its diff_id;
# - OCI of the containerd image store (engine 29): index.json may point at a nested
#   image index, layers may be gzip or zstd blobs (blob digest != diff_id), and
#   attestation manifests (platform unknown/unknown) sit beside the image.
# Layers are matched to diff_ids by position, through the image config, whatever
# their compression. An engine with the containerd store names an image by the digest
# of its index or manifest, not of its config: each image keeps every id it may have.
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
MAX_JSON_MEMBER = 16 << 20  # a manifest, index or config larger than this is no docker save output
MAX_INDEX_DEPTH = 8


class ImageTar:
    """What a save tar holds: its images (config id, other ids, tags, layer members in order)."""

    def __init__(self, path):
        import tarfile  # here, not at the top: loading the workflows must stay cheap

        self.path = path
        self.gzip = is_gzip(path)
        try:
            # "r:" (not "r|") reads headers and seeks over contents: cheap on a large plain tar.
            with tarfile.open(path, "r:gz" if self.gzip else "r:") as archive:
                self.members = archive.getmembers()
                self._archive = archive
                self._by_name = {_clean(m.name): m for m in self.members}
                self.layout = "oci" if "index.json" in self._by_name else "legacy"
                self.images = self._images()
        except (tarfile.TarError, KeyError, ValueError, TypeError, AttributeError, EOFError, OSError,
                RecursionError) as err:
            raise StepFailed("%s is not a readable image tar (docker save output): %s"
                             % (path, _why(err))) from None
        finally:
            self._archive = None

    def _json(self, name):
        member = self._by_name.get(_clean(name))
        if member is None:
            raise ValueError("it has no %s" % name)
        seen = set()
        while member.issym() or member.islnk():  # docker save links a layer met twice
            if member.name in seen:
                raise ValueError("%s is a link loop" % name)
            seen.add(member.name)
            target = member.linkname if member.islnk() else os.path.join(os.path.dirname(member.name), member.linkname)
            member = self._by_name.get(_clean(target))
            if member is None:
                raise ValueError("%s links to %s, which it does not hold" % (name, target))
        if not member.isreg() or member.size > MAX_JSON_MEMBER:
            raise ValueError("%s is not a JSON file of at most %d MiB" % (name, MAX_JSON_MEMBER >> 20))
        return json.loads(self._archive.extractfile(member).read())

    def _images(self):
        if "manifest.json" not in self._by_name:
            raise ValueError("it has no manifest.json (an OCI layout alone is no docker save output)")
        other_ids = self._index_ids() if self.layout == "oci" else {}
        images = []
        for entry in self._json("manifest.json"):
            config_id = _blob_id(entry["Config"])
            config = self._json(entry["Config"])
            layers, diff_ids = list(entry["Layers"]), list(config["rootfs"]["diff_ids"])
            if len(layers) != len(diff_ids) or not all(isinstance(p, str) for p in layers):
                raise ValueError("%s lists %d layers, its config %d" % (entry["Config"], len(layers), len(diff_ids)))
            for layer in layers:
                if _clean(layer) not in self._by_name:
                    raise ValueError("it has no layer %s" % layer)
            images.append({
                "id": config_id,
                "ids": [config_id] + [i for i in other_ids.get(config_id, []) if i != config_id],
                "tags": [t for t in entry.get("RepoTags") or [] if isinstance(t, str)],
                "layers": layers,
                "diff_ids": diff_ids,
            })
        return images

    def _index_ids(self):
        """config id -> the digests of the indexes and manifests above it in index.json."""
        ids = {}

        def walk(descriptors, above, depth):
            if depth > MAX_INDEX_DEPTH:
                raise ValueError("index.json nests more than %d indexes" % MAX_INDEX_DEPTH)
            for descriptor in descriptors or []:
                if _is_attestation(descriptor):
                    continue
                digest, media_type = descriptor["digest"], descriptor.get("mediaType")
                blob = "blobs/" + digest.replace(":", "/", 1)
                if media_type in INDEX_TYPES:
                    walk(self._json(blob).get("manifests"), above + [digest], depth + 1)
                elif media_type in MANIFEST_TYPES:
                    config_id = self._json(blob)["config"]["digest"]
                    ids.setdefault(config_id, []).extend(above + [digest])

        walk(self._json("index.json").get("manifests"), [], 0)
        return ids

    def image_ids(self):
        """Every id an engine may report for the images of this tar."""
        return [image_id for image in self.images for image_id in image["ids"]]

    def layer_chains(self):
        """layer member (a legacy layer's folder, or a blob) -> the chain ids it serves."""
        chains = {}
        for image in self.images:
            for layer, chain in zip(image["layers"], chain_ids(image["diff_ids"])):
                chains.setdefault(_layer_member(layer), set()).add(chain)
        return chains

    def layers_to_skip(self, present_chains):
        """The layer members a target that holds `present_chains` does not need: every
        chain a member serves is there, and no member that is sent links into it."""
        skip = {member for member, chains in self.layer_chains().items() if chains <= present_chains}
        for member in self.members:
            if (member.issym() or member.islnk()) and not _within(_clean(member.name), skip):
                base = "" if member.islnk() else os.path.dirname(_clean(member.name))
                target = _clean(os.path.join(base, member.linkname))
                skip = {kept for kept in skip if not (target == kept or target.startswith(kept + "/"))}
        return skip

    def ranges_without(self, skip):
        """Byte ranges of the tar that make a valid tar without the `skip` layer members
        (from layers_to_skip). Headers (pax/long-name ones included) are kept with their members."""
        ranges = []
        for member in self.members:
            if _within(_clean(member.name), skip):
                continue
            end = member.offset_data + _round_up(member.size if member.isreg() else 0)
            if ranges and ranges[-1][1] == member.offset:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((member.offset, end))
        return ranges


def _clean(name):
    return os.path.normpath(name).lstrip("/") if name else name


def _blob_id(config_path):
    """The image id a config member's name gives: `<hex>.json` or `blobs/sha256/<hex>`."""
    name = os.path.basename(config_path)
    hex_digest = name[:-len(".json")] if name.endswith(".json") else name
    if not _is_sha256(hex_digest):
        raise ValueError("config %s is not named by its sha256" % config_path)
    return "sha256:" + hex_digest


def _layer_member(layer_path):
    """What goes with a layer: a legacy layer's whole folder (layer.tar, json, VERSION),
    or the blob itself."""
    layer_path = _clean(layer_path)
    return layer_path if layer_path.startswith("blobs/") else os.path.dirname(layer_path)


def _within(name, members):
    return name in members or any(name.startswith(member + "/") for member in members)


def _is_attestation(descriptor):
    platform = descriptor.get("platform") or {}
    annotations = descriptor.get("annotations") or {}
    return (annotations.get("vnd.docker.reference.type") == "attestation-manifest"
            or (platform.get("os"), platform.get("architecture")) == ("unknown", "unknown"))


def _why(err):
    """The reason in one line: a member name may hold a newline or an escape."""
    text = ("no field %s" % err if isinstance(err, KeyError) else str(err)) or type(err).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _round_up(size):
    return (size + BLOCK - 1) // BLOCK * BLOCK


def read_ranges(path, ranges, chunk_size):
    """Yield the bytes of `ranges` of the file, then the two zero blocks that end a tar."""
    with open(path, "rb") as handle:
        for start, end in ranges:
            handle.seek(start)
            left = end - start
            while left:
                block = handle.read(min(chunk_size, left))
                if not block:
                    raise StepFailed("%s changed while it was read" % path)
                left -= len(block)
                yield block
    yield b"\0" * (2 * BLOCK)
