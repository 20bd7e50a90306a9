"""Image tars as `docker save` writes them, and the sha256 file beside them.

A save tar holds one folder per layer (`<id>/layer.tar`, `json`, `VERSION`), one
config `<image id hex>.json` per image and `manifest.json`, which names each
image's config, tags and layer files in order. The config's `rootfs.diff_ids`
give each layer's chain id, the key under which an engine keeps a layer: a layer
whose chain id the target already has need not be shipped (measured on engine 20.10: `docker load`
skips a layer whose chain it already has without opening its file).
"""
import hashlib
import json
import os
import threading

from .digest import files_digest, stat_key
from .errors import StepFailed
from .files import read_cache, write_atomic, write_cache
from .steps import project_dir

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


def cached_sha256(path, saved_stats=None):
    """(sha256, stats) of one file; the sha is reused while size, ctime, inode and mode
    are those in `saved_stats` (a no-op run does not re-read a 1 GiB tar), or those
    another step recorded for that tar in this project."""
    path = os.path.abspath(path)
    folder, name = os.path.split(path)
    if name not in (saved_stats or {}) and path in _known_tars():
        saved_stats = {name: _known_tars()[path]}
    _, stats = files_digest(folder, [name], saved_stats)
    if stats[name] != (saved_stats or {}).get(name):  # learnt now: the other steps may use it
        _remember_tar(path, stats[name])
    return stats[name][4], stats


def known_sha256(path, sha256):
    """The stats cached_sha256 keeps, for a file whose sha256 was computed while writing
    it; kept for the project's other steps too."""
    path = os.path.abspath(path)
    entry = stat_key(os.lstat(path)) + [sha256]
    _remember_tar(path, entry)
    return {os.path.basename(path): entry}


# Save learns a tar's sha256 while writing it; transfer and load would each read the
# whole tar again to learn it (2 s for 1 GiB). So the stats of every tar hashed here
# are kept for the project's other steps: .dockflow/cache/tar-hashes.json.
_tars = {}
_tars_lock = threading.Lock()  # `doit -P thread`: two steps must not write the file at once


def _tar_hashes_path():
    return os.path.join(project_dir(), ".dockflow", "cache", "tar-hashes.json")


def _known_tars():
    if "known" not in _tars:
        # Any entry may be damaged: keep only the exact shape written here.
        _tars["known"] = {path: stats for path, stats in read_cache(_tar_hashes_path()).items()
                          if _is_tar_stats(stats)}
    return _tars["known"]


def _is_tar_stats(stats):
    return isinstance(stats, list) and len(stats) == 5 and _is_sha256(stats[4])


def _remember_tar(path, stats):
    with _tars_lock:
        known = _known_tars()
        if known.get(path) == stats:
            return
        known[path] = stats
        for gone in [p for p in known if not os.path.lexists(p)]:  # tars of old versions
            del known[gone]
        write_cache(_tar_hashes_path(), known)


def is_gzip(path):
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


class ImageTar:
    """What a save tar holds: its images (config id, tags, layer files in order)."""

    def __init__(self, path):
        import tarfile  # here, not at the top: loading the workflows must stay cheap

        self.path = path
        self.gzip = is_gzip(path)
        try:
            # "r:" (not "r|") reads headers and seeks over contents: cheap on a large plain tar.
            with tarfile.open(path, "r:gz" if self.gzip else "r:") as archive:
                self.members = archive.getmembers()
                by_name = {m.name: m for m in self.members}
                manifest = json.load(archive.extractfile(by_name["manifest.json"]))
                self.images = []
                for entry in manifest:
                    config = json.load(archive.extractfile(by_name[entry["Config"]]))
                    self.images.append({
                        "id": "sha256:" + entry["Config"].split("/")[-1][:-len(".json")],
                        "tags": entry.get("RepoTags") or [],
                        "layers": entry["Layers"],
                        "diff_ids": config["rootfs"]["diff_ids"],
                    })
        except (tarfile.TarError, KeyError, ValueError, TypeError, EOFError, OSError) as err:
            raise StepFailed("%s is not a readable image tar (docker save output): %s"
                             % (path, err or type(err).__name__)) from None

    def image_ids(self):
        return [image["id"] for image in self.images]

    def layer_chains(self):
        """layer folder -> chain id, for every layer of every image."""
        chains = {}
        for image in self.images:
            for folder, chain in zip([os.path.dirname(p) for p in image["layers"]], chain_ids(image["diff_ids"])):
                chains[folder] = chain
        return chains

    def ranges_without(self, skip_folders):
        """Byte ranges of the tar that make a valid tar without those layer folders.
        Headers (pax/long-name ones included) are kept with their members."""
        ranges = []
        for member in self.members:
            if member.name.split("/")[0] in skip_folders:
                continue
            end = member.offset_data + _round_up(member.size if member.isreg() else 0)
            if ranges and ranges[-1][1] == member.offset:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((member.offset, end))
        return ranges


def chain_ids(diff_ids):
    """The engine's chain ids of a layer stack (image-spec: ChainID)."""
    chains = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append("sha256:" + hashlib.sha256(("%s %s" % (chains[-1], diff_id)).encode()).hexdigest())
    return chains


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
