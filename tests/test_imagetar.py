"""tasks/imagetar.py: reading the three `docker save` layouts, and which members a
target that holds some layers need not get. No engine: the tars are made here, in the
legacy layout, and converted by tests/support/savefmt.py as newer engines write them."""
import hashlib
import io
import json
import tarfile

import pytest

from tasks import engine, imagetar
from tasks.errors import StepFailed
from tests.support import savefmt


def layer(files):
    """A layer tar holding `files` (name -> bytes)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def legacy_tar(path, images, link_repeats=False):
    """A legacy save tar of `images` [(tags, [layer bytes])], as engine 20.10 writes it;
    with link_repeats, a layer met again is a symlink to its first copy (as docker save does).
    Returns the config ids."""
    config_ids, manifest, written = [], [], {}
    with tarfile.open(path, "w") as archive:
        def add(name, data=None, link=None):
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))

        for tags, layers in images:
            diff_ids = [sha(data) for data in layers]
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
            config_id = sha(config)
            config_ids.append(config_id)
            folders = []
            for position, chain in enumerate(imagetar.chain_ids(diff_ids)):
                folder = hashlib.sha256(chain.encode()).hexdigest()
                folders.append(folder)
                if folder in written:
                    continue
                if link_repeats and diff_ids[position] in written.values():
                    first = next(f for f, d in written.items() if d == diff_ids[position])
                    add(folder + "/layer.tar", link="../%s/layer.tar" % first)
                else:
                    add(folder + "/layer.tar", layers[position])
                add(folder + "/VERSION", b"1.0")
                written[folder] = diff_ids[position]
            add(config_id[7:] + ".json", config)
            manifest.append({"Config": config_id[7:] + ".json", "RepoTags": tags,
                             "Layers": [f + "/layer.tar" for f in folders]})
        add("manifest.json", json.dumps(manifest).encode())
    return config_ids


BASE = layer({"bin/busybox": b"b" * 3000})
APP = layer({"app/data.txt": b"one\n"})


@pytest.fixture(params=savefmt.LAYOUTS)
def app_tar(request, tmp_path):
    """(path, layout, config id, other ids) of a tar holding t/app:1 = BASE + APP."""
    legacy = str(tmp_path / "legacy.tar")
    (config_id,) = legacy_tar(legacy, [(["t/app:1"], [BASE, APP])])
    path = str(tmp_path / ("app-%s.tar" % request.param))
    digests = savefmt.convert(legacy, path, request.param)
    return path, request.param, config_id, digests


def test_each_layout_gives_the_image_its_config_id_tags_and_layers(app_tar):
    path, layout, config_id, digests = app_tar
    tar = imagetar.ImageTar(path)
    (image,) = tar.images
    assert image["id"] == config_id  # all 64 hex digits: the 25+ layout's config has no .json to cut
    assert image["tags"] == ["t/app:1"]
    assert image["diff_ids"] == [sha(BASE), sha(APP)]
    assert tar.layout == ("legacy" if layout == "legacy" else "oci")


def test_an_engine_with_the_containerd_store_may_name_the_image_by_its_index_or_manifest(app_tar):
    """Its id is then the digest index.json points at; the attestation manifest is no id of it."""
    path, layout, config_id, digests = app_tar
    assert imagetar.ImageTar(path).image_ids() == [config_id] + digests
    assert len(digests) == {"legacy": 0, "oci": 1, "oci-nested": 2}[layout]


def test_a_target_that_has_the_base_gets_only_the_app_layer(app_tar, tmp_path):
    path, layout, config_id, digests = app_tar
    tar = imagetar.ImageTar(path)
    skip = tar.layers_to_skip({sha(BASE)})
    assert len(skip) == 1
    thin = tmp_path / "thin.tar"
    thin.write_bytes(b"".join(imagetar.read_ranges(path, tar.ranges_without(skip), 4096)))
    with tarfile.open(thin) as archive:
        names = set(archive.getnames())
    assert "manifest.json" in names
    (kept_layer, skipped_layer) = (tar.images[0]["layers"][1], tar.images[0]["layers"][0])
    assert kept_layer in names and skipped_layer not in names
    assert "blobs/sha256/" + config_id[7:] in names or config_id[7:] + ".json" in names


def test_nothing_is_skipped_for_a_target_without_the_base(app_tar):
    tar = imagetar.ImageTar(app_tar[0])
    assert tar.layers_to_skip({sha(APP)}) == set()  # the app's diff_id alone is no chain it has


@pytest.mark.parametrize("layout", ["oci", "oci-nested"])
def test_a_blob_two_images_share_stays_unless_both_chains_are_there(tmp_path, layout):
    """APP is the second layer of one image and the only layer of another: one blob, two
    chains. A target with the first image's chains still lacks the second's."""
    legacy = str(tmp_path / "legacy.tar")
    legacy_tar(legacy, [(["t/app:1"], [BASE, APP]), (["t/solo:1"], [APP])])
    path = str(tmp_path / "two.tar")
    savefmt.convert(legacy, path, layout)
    tar = imagetar.ImageTar(path)
    base_blob, app_blob = tar.images[0]["layers"]
    assert tar.images[1]["layers"] == [app_blob]
    first_chains = set(imagetar.chain_ids([sha(BASE), sha(APP)]))
    assert tar.layers_to_skip(first_chains) == {base_blob}
    assert tar.layers_to_skip(first_chains | {sha(APP)}) == {base_blob, app_blob}


def test_a_layer_linked_from_a_sent_layer_is_sent(tmp_path):
    """docker save writes a layer met twice as a symlink to its first copy: that copy
    must go when the link does, even if the target has its chain."""
    path = str(tmp_path / "repeat.tar")
    legacy_tar(path, [(["t/repeat:1"], [BASE, BASE])], link_repeats=True)
    tar = imagetar.ImageTar(path)
    first_chain = imagetar.chain_ids([sha(BASE)])[0]
    assert tar.layers_to_skip({first_chain}) == set()
    assert len(tar.layers_to_skip(set(imagetar.chain_ids([sha(BASE), sha(BASE)])))) == 2


def test_compressed_layers_are_matched_to_diff_ids_through_the_config(tmp_path):
    """The blob digest of a compressed layer is not its diff_id: the config's order tells."""
    legacy = str(tmp_path / "legacy.tar")
    legacy_tar(legacy, [(["t/app:1"], [BASE, APP])])
    path = str(tmp_path / "gz.tar")
    savefmt.convert(legacy, path, "oci-nested")
    tar = imagetar.ImageTar(path)
    blob_digests = {layer.split("/")[-1] for layer in tar.images[0]["layers"]}
    assert not blob_digests & {sha(BASE)[7:], sha(APP)[7:]}
    assert [tar.layer_chains()[blob] for blob in tar.images[0]["layers"]] == [
        {chain} for chain in imagetar.chain_ids([sha(BASE), sha(APP)])]


def _rewrite(path, out, change):
    """Copy the tar at `path` to `out`, `change(name, data)` giving each member's new bytes
    (None drops it)."""
    with tarfile.open(path) as source, tarfile.open(out, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("damage, message", [
    ("drop a layer", "it has no layer"),
    ("config not named by its sha256", "is not named by its sha256"),
    ("no manifest.json", "no manifest.json"),
    ("layer count differs from the config", "lists 1 layers, its config 2"),
])
def test_a_damaged_tar_is_one_clear_error(tmp_path, damage, message):
    legacy = str(tmp_path / "legacy.tar")
    legacy_tar(legacy, [(["t/app:1"], [BASE, APP])])
    source = str(tmp_path / "oci.tar")
    savefmt.convert(legacy, source, "oci")
    app_blob = "blobs/" + sha(APP).replace(":", "/")

    def change(name, data):
        if name == "manifest.json":
            entry = json.loads(data)[0]
            if damage == "config not named by its sha256":
                entry["Config"] = "blobs/sha256/config"
            if damage == "layer count differs from the config":
                entry["Layers"] = entry["Layers"][:1]
            return None if damage == "no manifest.json" else json.dumps([entry]).encode()
        if name == app_blob and damage == "drop a layer":
            return None
        return data

    broken = str(tmp_path / "broken.tar")
    _rewrite(source, broken, change)
    with pytest.raises(StepFailed, match=message):
        imagetar.ImageTar(broken)


def test_an_index_that_nests_itself_is_refused(tmp_path):
    legacy = str(tmp_path / "legacy.tar")
    legacy_tar(legacy, [(["t/app:1"], [BASE, APP])])
    source = str(tmp_path / "oci.tar")
    savefmt.convert(legacy, source, "oci")
    loop = {"schemaVersion": 2, "mediaType": imagetar.INDEX_TYPES[0], "manifests": []}
    # an index blob naming itself cannot be written (its digest would change): name a
    # chain of indexes deeper than any engine writes instead
    blobs, digest = {}, None
    for _ in range(imagetar.MAX_INDEX_DEPTH + 2):
        body = dict(loop, manifests=[{"mediaType": imagetar.INDEX_TYPES[0], "digest": digest, "size": 1}]
                    if digest else [])
        data = json.dumps(body).encode()
        digest = sha(data)
        blobs["blobs/" + digest.replace(":", "/")] = data
    out = str(tmp_path / "deep.tar")
    with tarfile.open(source) as archive, tarfile.open(out, "w") as target:
        for member in archive.getmembers():
            data = archive.extractfile(member).read() if member.isreg() else None
            if member.name == "index.json":
                data = json.dumps({"manifests": [{"mediaType": imagetar.INDEX_TYPES[0], "digest": digest,
                                                  "size": 1}]}).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    with pytest.raises(StepFailed, match="nests more than"):
        imagetar.ImageTar(out)


@pytest.mark.parametrize("driver_status, containerd", [
    ([["Backing Filesystem", "extfs"], ["Supports d_type", "true"]], False),   # overlay2, engine 20.10-28
    ([["driver-type", "io.containerd.snapshotter.v1"]], True),                  # engine 29 default
    (None, False),
])
def test_the_containerd_image_store_is_told_from_the_engines_info(driver_status, containerd):
    target = engine.Engine("unix:///nonexistent.sock")
    target._info = {"Driver": "overlayfs" if containerd else "overlay2", "DriverStatus": driver_status}
    assert target.uses_containerd_store() is containerd


def test_a_tar_saved_again_since_the_load_last_ran_is_not_read_again(tmp_path, monkeypatch):
    """After an app-only change the save writes the tar again and learns its sha256; the
    load's own record (its last run's) no longer holds, the save's does: no second read
    of the whole tar (0.1 to 0.2 s for 66 MiB, on every app-only change)."""
    from tasks import digest, files, runstate

    reads = []
    monkeypatch.setattr(digest, "sha256_file", lambda path: reads.append(path) or files.sha256_file(path))
    cache_dir, tar = str(tmp_path / "cache"), tmp_path / "app.tar"
    tar.write_bytes(b"version 1")
    loads_record = imagetar.known_sha256(str(tar), sha(b"version 1")[7:], cache_dir)  # the load's last run
    tar.unlink()
    tar.write_bytes(b"version 2 of the app")  # the save, again, and what it learnt while writing
    imagetar.known_sha256(str(tar), sha(b"version 2 of the app")[7:], cache_dir)
    runstate.reset()  # the load runs in the next process
    assert imagetar.cached_sha256(str(tar), cache_dir, loads_record)[0] == sha(b"version 2 of the app")[7:]
    assert reads == []
    # written by someone else (sizes differ: a ctime can repeat within a clock tick)
    tar.write_bytes(b"version 3 of the app, longer")
    assert imagetar.cached_sha256(str(tar), cache_dir, loads_record)[0] == sha(b"version 3 of the app, longer")[7:]
    assert reads == [str(tar)]
