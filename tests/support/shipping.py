"""Helpers shared by the save / transfer / load tests."""
import hashlib
import json
import os
import signal
import subprocess
import tarfile
import time


def build_app(docker_cli, busybox_image, ref, text="one", folder=None, size=0):
    """An image FROM the busybox base with one small layer (plus `size` bytes of noise)."""
    context = folder
    os.makedirs(context, exist_ok=True)
    with open(os.path.join(context, "data.txt"), "w") as handle:
        handle.write(text + "\n")
    with open(os.path.join(context, "Dockerfile"), "w") as handle:
        handle.write("FROM %s\nCOPY data.txt /app/data.txt\n" % busybox_image)
        if size:
            handle.write("RUN dd if=/dev/urandom of=/app/noise bs=1024 count=%d\n" % (size // 1024))
    docker_cli("build", "-q", "-t", ref, context)
    return docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip()


def save_and_load(ref, load_fields=""):
    """A workflow of two steps: save REF to ../out/app.tar, load it (its target and other
    fields: `load_fields`, lines that each start with a newline and four spaces)."""
    return ("steps:\n  save:\n    kind: save\n    image: %s\n    tar: ../out/app.tar\n"
            "  load:\n    kind: load\n    tar: ../out/app.tar\n    image: %s%s\n" % (ref, ref, load_fields))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tar_image_id(path):
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    return "sha256:" + manifest[0]["Config"][:-len(".json")]


def copy_image(docker_cli, ref, to_host):
    """docker save REF | docker -H TO load (puts a base on host B)."""
    saved = docker_cli("save", ref, input=b"")
    subprocess.run(["docker", "-H", to_host, "load"], input=saved, check=True, capture_output=True)


def doit_until(project, args, condition, what):
    """Start `doit ARGS` in its own process group, SIGKILL the group once
    condition() holds; the run's output. Fails if doit ends first."""
    process = project.start(*args, start_new_session=True)
    with process.stdout:
        try:
            while not condition():
                if process.poll() is not None:
                    raise AssertionError("doit ended before %s: %s" % (what, process.stdout.read()))
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return process.stdout.read()
