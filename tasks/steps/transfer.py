"""transfer: a tar -> one or more destinations (the `cp` / `scp` of Exercise 3.08).

A destination is a local path or `[user@]host:/path` over ssh (scp, options from
the step's `ssh:` field), read as `cp` and `scp` read it:
  an existing folder, with or without a trailing `/`   the tar goes into it, under its own name
  a missing path ending in `/`                          made as a folder, the tar goes into it
  a missing path without one                            the file name the tar is copied to
                                                        (the plan says so)
  an existing file                                      replaced
Each copy goes to a temporary name at the destination, its sha256 is checked
there, and only then is it renamed: an interrupted copy never leaves a file under
the final name. Up to date when every destination already holds the tar's sha256.
Remote destinations are asked and copied to at once, `parallel:` at a time
(tasks/fanout.py): one that fails does not stop the others; the step then fails
naming it, and a rerun copies only to the destinations still lacking the tar.
"""
import os
import subprocess
import time

from .. import fanout, ssh, ui
from ..errors import StepFailed
from ..files import CHUNK, atomic_writer, sha256_file
from . import Verdict, contract

# The step-kind contract's members this kind takes as they are (steps/contract.py).
ALWAYS_RUN = contract.RUNS_WHEN_OUT_OF_DATE
COMMAND_LINE_SWITCHES = contract.NO_SWITCHES
exclusive = contract.shares_the_lock
problems = contract.no_problems

# imagetar and progress are imported in the functions that check or run: loading
# the workflows imports every step module, and it needs neither.


def outputs(step):
    return [("file", dest) for dest, remote, _named in _destinations(step) if remote is None]


def inputs(step):
    return [("file", step.path("tar"))]


def _destinations(step):
    """[(path, Remote or None, named)] in the step's order: `named` when the text does not
    end in `/` and is no folder here, so that the tar is copied to a file of that name.
    A remote one may still be a folder there: check() asks (_remote_state)."""
    name = os.path.basename(step.path("tar"))
    found = []
    for text in step.get("destinations"):
        remote_parts = ssh.parse_destination(text)
        if remote_parts is None:
            path = os.path.normpath(os.path.join(step.workflow.base_dir, os.path.expanduser(text)))
            into = text.endswith("/") or os.path.isdir(path)
            found.append((os.path.join(path, name) if into else path, None, not into))
        else:
            user, host, path = remote_parts
            remote = ssh.Remote(host, user, step.get("ssh"), step.workflow.base_dir)
            folder = path or "./"  # host: alone is the remote home folder, as for scp
            into = folder.endswith("/")
            found.append((folder + name if into else path, remote, not into))
    return found


def _shown(final, remote):
    return "%s:%s" % (remote.target, final) if remote else os.path.relpath(final)


def check(step, saved):
    from .. import imagetar

    tar_path = step.path("tar")
    if not os.path.isfile(tar_path):
        raise StepFailed("%s: %s does not exist (run the save step that makes it)" % (step.where("tar"), tar_path))
    sha256, stats = imagetar.cached_sha256(tar_path, step.workflow.project.cache_dir, saved.get("files"))
    recorded = imagetar.read_sidecar(tar_path)
    if recorded is not None and recorded != sha256:
        raise StepFailed("%s: %s does not match its checksum file %s: run its save step again"
                         % (step.where("tar"), tar_path, imagetar.sidecar_path(tar_path)))
    dest_stats, pending, unasked = dict(saved.get("dest_files") or {}), [], {}
    name = os.path.basename(tar_path)
    destinations = _destinations(step)
    looked = fanout.each(step, [d for d in destinations if d[1] is not None],
                         lambda destination, _stopping: _remote_lookup(destination, name))
    for final, remote, named in destinations:
        if remote is None:
            if os.path.isfile(final):
                dest_sha, dest_stats[final] = imagetar.cached_sha256(final, step.workflow.project.cache_dir,
                                                                     dest_stats.get(final))
            else:
                dest_sha = None
        else:
            found, error = looked[(final, remote, named)]
            if error:
                if len(destinations) == 1:
                    raise error
                unasked[_shown(final, remote)] = error
                pending.append((final, remote, "not asked: %s" % error))
                continue
            final, named, dest_sha = found
        if dest_sha != sha256:
            pending.append((final, remote, _state_words(dest_sha, named)))
    memo = {"sha256": sha256, "files": stats, "dest_files": dest_stats, "pending": pending, "unasked": unasked,
            "shown": [_shown(final, remote) for final, remote, _named in destinations]}
    if not pending:
        return Verdict(True, memo=memo)
    return Verdict(False, "copying %s to %s" % (os.path.relpath(tar_path), ", ".join(
        "%s (%s)" % (_shown(f, r), words) for f, r, words in pending)), memo)


def _state_words(dest_sha, named):
    """How the plan shows a destination that is not up to date."""
    if dest_sha is not None:
        return "differs"
    if named:
        return "missing: a new file of that name; end the destination with / for a folder"
    return "missing"


def _remote_lookup(destination, name):
    """(final path, named, sha256 or None) of a remote destination."""
    final, remote, named = destination
    if named:
        return _remote_state(remote, final, name)
    return final, named, _remote_sha256(remote, final)


def _remote_state(remote, path, name):
    """(final path, named, sha256 or None) of a remote destination written without a
    trailing `/`: a folder there receives the tar under its own name, as scp does."""
    script = ('if [ -d "$1" ]; then echo folder; p="${1%/}/$2"; else echo named; p="$1"; fi; '
              'if [ -f "$p" ]; then sha256sum -- "$p"; fi')
    _code, out = remote.run("sh", "-c", script, "sh", path, name, what="look at " + path)
    lines = out.splitlines()
    folder = bool(lines) and lines[0] == "folder"
    final = path.rstrip("/") + "/" + name if folder else path
    sha = lines[1].split()[0] if len(lines) > 1 and lines[1].strip() else None
    return final, not folder, sha


def _remote_sha256(remote, path):
    """The sha256 of a remote file, or None when there is no such file."""
    code, out = remote.run("sha256sum", "--", path, what="sha256sum of " + path, ok_codes=(0, 1))
    return out.split()[0] if code == 0 and out.strip() else None


def run(step, verdict):
    memo = verdict.memo
    tar_path = step.path("tar")
    size = os.path.getsize(tar_path)
    dest_stats = dict(memo["dest_files"])
    failed = dict(memo.get("unasked") or {})  # the check could not ask them: not tried again in this run
    copies = [(final, remote) for final, remote, _words in memo["pending"] if _shown(final, remote) not in failed]
    for final, remote in copies:  # local ones, one after another (one disk)
        if remote is None:
            try:
                dest_stats[final] = _copy(step, tar_path, size, memo["sha256"], final, remote)
            except StepFailed as err:
                failed[_shown(final, remote)] = err
    done = fanout.each(step, [copy for copy in copies if copy[1] is not None], lambda copy, _stopping: _copy(
        step, tar_path, size, memo["sha256"], *copy))
    failed.update({_shown(*copy): error for copy, (_result, error) in done.items() if error})
    if failed:
        raise fanout.failure(step, failed, memo.get("shown") or list(failed))
    return {"sha256": memo["sha256"], "files": memo["files"], "dest_files": dest_stats}


def _copy(step, tar_path, size, sha256, final, remote):
    """Copy the tar to one destination and say so in one line; a local copy's file stats."""
    from ..progress import human_size

    started = time.monotonic()
    stats = None
    if remote is None:
        stats = _copy_local(step, tar_path, final, sha256, size)
    else:
        _copy_remote(step, tar_path, remote, final, sha256)
    ui.say(step.name, "copied %s to %s: %s in %.1f s, sha256 checked there" % (
        os.path.basename(tar_path), _shown(final, remote), human_size(size), time.monotonic() - started))
    return stats


def _copy_local(step, tar_path, final, sha256, size):
    from .. import imagetar
    from ..progress import bytes_bar

    limit = (step.get("bwlimit") or 0) * 1024
    try:
        with open(tar_path, "rb") as source, atomic_writer(final) as handle, \
                bytes_bar("copy to " + os.path.relpath(final), size) as bar:
            started, done = time.monotonic(), 0
            block_size = min(CHUNK, max(limit // 8, 4096)) if limit else CHUNK  # smooth under a limit
            for block in iter(lambda: source.read(block_size), b""):
                handle.write(block)
                done += len(block)
                bar.advance(len(block))
                if limit:
                    time.sleep(max(0.0, done / limit - (time.monotonic() - started)))
            handle.flush()
            os.fsync(handle.fileno())
            copied = sha256_file(handle.name)  # what landed, read back from the temp name
            if copied != sha256:
                raise StepFailed("%s: the copy at %s has sha256 %s, not %s; nothing was renamed into place"
                                 % (step.name, final, copied[:12], sha256[:12]))
    except OSError as err:
        raise StepFailed("%s: cannot copy to %s: %s" % (step.name, final, err.strerror or err)) from None
    return imagetar.known_sha256(final, sha256, step.workflow.project.cache_dir)


def _copy_remote(step, tar_path, remote, final, sha256):
    folder, name = os.path.split(final)
    # One fixed temp name per destination: a copy killed half way is overwritten next time.
    temp = os.path.join(folder, ".%s.partial" % name)
    if folder:
        remote.run("mkdir", "-p", "--", folder, what="mkdir " + folder)
    argv = ["scp", *remote.options(port_flag="-P")]
    if step.get("bwlimit"):
        argv += ["-l", str(int(step.get("bwlimit")) * 8)]  # scp counts Kbit/s
    if not ui.is_terminal():
        argv.append("-q")  # scp draws its own progress meter on a terminal
    argv += ["--", tar_path, "%s:%s" % (remote.target, temp)]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise StepFailed("%s: scp to %s:%s failed: %s" % (
            step.name, remote.target, temp, ssh.last_line(done.stderr) or "exit %d" % done.returncode))
    copied = _remote_sha256(remote, temp)
    if copied != sha256:
        remote.run("rm", "-f", "--", temp, what="rm " + temp)
        raise StepFailed("%s: the copy at %s:%s has sha256 %s, not %s; nothing was renamed into place"
                         % (step.name, remote.target, temp, (copied or "none")[:12], sha256[:12]))
    remote.run("mv", "-f", "--", temp, final, what="rename into " + final)
