"""Ship images: our steps beside the plain docker commands, both in one run, medians.

(a) save of an image of >= 1 GiB: wall time and peak RSS of `doit save` (in a
    throwaway project) beside `docker save -o`, both measured with /usr/bin/time -v.
(b) after changing one file of an app: bytes shipped and wall time of `doit load`
    into host B over ssh:// beside `docker save | ssh hostb docker load`.
(c) more than one machine: the app shipped to 1, 3, 6 hosts, each link limited to
    100 Mbit/s (tc tbf on this side of its veth), three ways in the same run:
      fan-out   `doit load` with docker_hosts: every host at once, its own thin tar
      plain     `docker save app | ssh HOST docker load` to each host in turn
      registry  `doit push` then `doit pull` on the hosts
      and the fan-out's load alone, its tar saved before (where its time goes)
    cold (the hosts hold nothing) and after an app-only change (they hold the last
    version); wall time, bytes on each link (its transmit counter), ratio to plain,
    and the processor seconds of doit's own processes (python and its ssh, not the
    engines'), with the machine's load average: the fan-out after an app-only change
    is processor-bound (it waits on engines and handshakes), the plain way link-bound.
    The sides take turns (their order rotates from run to run): the machine is shared.
The hosts are the test suite's (tests/support/hostb.py): network namespaces with their
own dockerd and sshd, started here and stopped by pid at the end. Needs root.

    python bench/bench_ship.py [--runs 3] [--size-mib 1100] [--only save|load|many]
                               [--hosts 1,3,6] [--base-mib 64] [--rate 100mbit]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tasks.progress import human_size  # noqa: E402
from tests.support.hostb import HostB, ssh_fields, start_hosts, stop_hosts  # noqa: E402
from tests.support.shipping import save_and_load  # noqa: E402
from tests.support.registry import free_port, make_registry_image, wait_answers  # noqa: E402

BASE = "dockflow-bench/busybox:1"


def sh(*argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs).stdout


def timed(argv, cwd=None, env=None):
    """(wall seconds, peak RSS in MiB, output) of one command under /usr/bin/time -v."""
    started = time.monotonic()
    done = subprocess.run(["/usr/bin/time", "-v", *argv], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (" ".join(argv), done.stdout, done.stderr))
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return wall, rss_kib / 1024.0, done.stdout + done.stderr


def processor_seconds(output):
    """User plus system time of a command and its children (ssh), from /usr/bin/time -v's
    report: what a run costs the machine's processors beside the engines' own work."""
    return sum(float(re.search(r"%s time \(seconds\): ([0-9.]+)" % kind, output).group(1))
               for kind in ("User", "System"))


def base_image(work):
    if not sh("docker", "images", "-q", BASE).strip():
        rootfs = os.path.join(work, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        for applet in ("sh", "dd", "cat", "echo", "rm", "mkdir"):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        tar = os.path.join(work, "rootfs.tar")
        sh("tar", "-C", rootfs, "-cf", tar, ".")
        sh("docker", "import", "-c", 'CMD ["sh"]', tar, BASE)
    return BASE


def build(work, name, dockerfile, files=None):
    context = os.path.join(work, name.replace("/", "_").replace(":", "_"))
    os.makedirs(context, exist_ok=True)
    for relpath, text in (files or {}).items():
        with open(os.path.join(context, relpath), "w") as handle:
            handle.write(text)
    with open(os.path.join(context, "Dockerfile"), "w") as handle:
        handle.write(dockerfile)
    sh("docker", "build", "-q", "-t", name, context)


def project(work, name, workflow):
    root = os.path.join(work, name)
    os.makedirs(os.path.join(root, "workflows"), exist_ok=True)
    with open(os.path.join(root, "dodo.py"), "w") as handle:
        handle.write("from tasks.dodo import DOIT_CONFIG, task_workflows  # noqa: F401\n")
    with open(os.path.join(root, "workflows", "flow.yaml"), "w") as handle:
        handle.write(textwrap.dedent(workflow))
    return root


def doit_env():
    return dict(os.environ, PYTHONPATH=REPO, DOCKFLOW_LOG_LEVEL="INFO")


def bench_save(work, runs, size_mib):
    big = "dockflow-bench/big:1"
    build(work, big, "FROM %s\nRUN dd if=/dev/urandom of=/big bs=1M count=%d\n" % (base_image(work), size_mib))
    size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", big))
    root = project(work, "save", """
        steps:
          save:
            kind: save
            image: %s
            tar: ../out/big.tar
        """ % big)
    ours, theirs = [], []
    for _ in range(runs):
        for name in ("out/big.tar", "out/big.tar.sha256"):
            if os.path.exists(os.path.join(root, name)):
                os.unlink(os.path.join(root, name))
        ours.append(timed([sys.executable, "-m", "doit", "save"], cwd=root, env=doit_env())[:2])
        cli_tar = os.path.join(work, "cli.tar")
        theirs.append(timed(["docker", "save", "-o", cli_tar, big])[:2])
        os.unlink(cli_tar)
    print("(a) save of %s (%.2f GiB), %d runs, medians" % (big, size / 2**30, runs))
    for label, rows in (("doit save (ours)", ours), ("docker save -o", theirs)):
        print("    %-18s wall %6.2f s   peak RSS %7.1f MiB" % (
            label, statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)))
    sh("docker", "rmi", big)


def app_base(work, mib):
    """dockflow-bench/appbase:1: the base an app is built on, `mib` MiB of random bytes."""
    base = "dockflow-bench/appbase:1"
    build(work, base, "FROM %s\nRUN dd if=/dev/urandom of=/runtime.bin bs=1M count=%d\n" % (base_image(work), mib))
    return base


def bench_load(work, runs, hostb):
    base = app_base(work, 64)
    with subprocess.Popen(["docker", "save", base], stdout=subprocess.PIPE) as saving:
        subprocess.run(["docker", "-H", hostb.docker_host, "load", "-q"], stdin=saving.stdout, check=True,
                       capture_output=True)
    app = "dockflow-bench/app:1"
    root = project(work, "load", save_and_load(app, ssh_fields([hostb])))
    dockerfile = "FROM %s\nCOPY index.html /index.html\n" % base
    ours, theirs = [], []
    for run in range(runs):
        build(work, app, dockerfile, {"index.html": "<p>version %d.a</p>\n" % run})
        wall, _, output = timed([sys.executable, "-m", "doit", "load"], cwd=root, env=doit_env())
        match = re.search(r"shipped (.*?) of (.*?) \(([0-9.]+)%\)", output)
        if not match:
            raise SystemExit("no shipped line in:\n" + output)
        ours.append((wall, match.group(1), match.group(2), match.group(3)))
        build(work, app, dockerfile, {"index.html": "<p>version %d.b</p>\n" % run})
        full = len(subprocess.run(["docker", "save", app], stdout=subprocess.PIPE, check=True).stdout)
        started = time.monotonic()
        with subprocess.Popen(["docker", "save", app], stdout=subprocess.PIPE) as saving:
            subprocess.run(hostb.ssh_argv() + ["docker", "load", "-q"], stdin=saving.stdout, check=True,
                           capture_output=True)
        theirs.append((time.monotonic() - started, full))
    print("(b) one file of the app changed, load into host B over ssh, %d runs, medians" % runs)
    print("    %-34s wall %6.2f s   shipped %s of %s (%s%%; the last run's)" % (
        "doit load (save + load, ours)", statistics.median(r[0] for r in ours), ours[-1][1], ours[-1][2],
        ours[-1][3]))
    print("    %-34s wall %6.2f s   shipped %.1f MiB (100%%)" % (
        "docker save | ssh hostb docker load", statistics.median(r[0] for r in theirs),
        statistics.median(r[1] for r in theirs) / 2**20))
    sh("docker", "rmi", app, base)


SIDES = ("fan-out", "plain", "registry", "load-only")
SIDE_NAMES = {"fan-out": "(a) doit load, docker_hosts (ours)", "plain": "(b) docker save | ssh HOST docker load",
              "registry": "(c) doit push + doit pull",
              "load-only": "(a) without its save: doit -s load"}  # the tar saved before, untimed


def cli(*args, check=True, input=None):
    """The docker CLI against this machine's engine (as the tests' docker_cli)."""
    done = subprocess.run(["docker", *args], capture_output=True, text=True, input=input)
    if check and done.returncode != 0:
        raise SystemExit("docker %s failed: %s" % (" ".join(args), done.stderr))
    return done.stdout if check else done


class Lab:
    """N hosts with limited links, a registry they reach, and the three ways to ship to them."""

    def __init__(self, work, hosts, registry_port, base, parallel):
        self.work, self.hosts, self.base = work, hosts, base
        self.app = "dockflow-bench/app:1"
        self.version = 0
        at_hosts = "%s:%d" % (hosts[0].address_a, registry_port)
        self.load_root = project(work, "many-load-%d" % len(hosts),
                                 save_and_load(self.app, "\n    parallel: %d%s" % (parallel, ssh_fields(hosts))))
        self.registry_root = project(work, "many-registry-%d" % len(hosts), """
            steps:
              push:
                kind: push
                image: %s
                registry: 127.0.0.1:%d
                repository: bench/app
                tag: latest
              pull:
                kind: pull
                needs: [push]
                image: %s/bench/app:latest
                parallel: %d%s
            """ % (self.app, registry_port, at_hosts, parallel, ssh_fields(hosts, 16)))

    def new_app(self):
        """A new version of the app: one small file changed on the same base."""
        self.version += 1
        build(self.work, self.app, "FROM %s\nCOPY index.html /index.html\n" % self.base,
              {"index.html": "<p>version %d</p>\n" % self.version})

    def empty_hosts(self):
        """Cold: no image on any host (asked over their local sockets, not their links)."""
        for host in self.hosts:
            host.docker("image", "prune", "--all", "--force")

    def ship(self, side):
        """(wall seconds, [bytes on each host's link], processor seconds of doit's processes
        or None) of shipping the app one way."""
        if side == "load-only":  # where (a)'s time goes: the tar written first, outside the clock
            timed([sys.executable, "-m", "doit", "save"], cwd=self.load_root, env=doit_env())
        before = [host.bytes_sent() for host in self.hosts]
        started = time.monotonic()
        output = None
        if side == "load-only":
            output = timed([sys.executable, "-m", "doit", "-s", "load"], cwd=self.load_root, env=doit_env())[2]
        elif side == "fan-out":
            output = timed([sys.executable, "-m", "doit", "load"], cwd=self.load_root, env=doit_env())[2]
        elif side == "plain":
            for host in self.hosts:
                with subprocess.Popen(["docker", "save", self.app], stdout=subprocess.PIPE) as saving:
                    subprocess.run(host.ssh_argv() + ["docker", "load", "-q"], stdin=saving.stdout, check=True,
                                   capture_output=True)
        else:
            output = timed([sys.executable, "-m", "doit", "pull"], cwd=self.registry_root, env=doit_env())[2]
        wall = time.monotonic() - started
        return (wall, [host.bytes_sent() - was for host, was in zip(self.hosts, before)],
                processor_seconds(output) if output else None)


def bench_many(work, runs, host_counts, base_mib, rate):
    base = app_base(work, base_mib)
    make_registry_image(cli, os.path.join(work, "registry-image"))
    hosts, registry = [], "dockflow-bench-registry-%d" % os.getpid()
    try:
        roots = [os.path.join(work, "host%d" % number) for number in range(max(host_counts))]
        for root in roots:
            os.makedirs(root)
        hosts = start_hosts(roots)
        for host in hosts:
            host.limit_rate(rate)
        port = free_port()
        cli("run", "-d", "--name", registry, "-p", "127.0.0.1:%d:5000" % port,
            "-p", "%s:%d:5000" % (hosts[0].address_a, port), "dockflow-test/registry:2")
        wait_answers("127.0.0.1:%d" % port)
        for count in host_counts:
            lab = Lab(work, hosts[:count], port, base, parallel=count)
            lab.new_app()
            full = len(subprocess.run(["docker", "save", lab.app], stdout=subprocess.PIPE, check=True).stdout)
            report(count, "cold ship", full, rate, measure(lab, runs, cold=True))
            report(count, "app-only change", full, rate, measure(lab, runs, cold=False))
    finally:
        cli("rm", "-f", registry, check=False)
        stop_hosts(hosts)
        cli("rmi", "dockflow-bench/app:1", base, check=False)


def measure(lab, runs, cold):
    """side -> [(wall, [bytes on each link], processor seconds)] over `runs` turns; the
    sides' order rotates. "load" -> the machine's load average (1 min) before each turn:
    the fan-out's work is processor-bound, the plain way's mostly link-bound."""
    rows = {side: [] for side in SIDES}
    rows["load"] = []
    for run in range(runs):
        rows["load"].append(os.getloadavg()[0])
        for side in SIDES[run % len(SIDES):] + SIDES[:run % len(SIDES)]:
            if cold:
                lab.empty_hosts()
            else:
                lab.ship("fan-out")  # every host holds the last version, whichever side ran before
            lab.new_app()
            rows[side].append(lab.ship(side))
    return rows


def report(count, what, full, rate, rows):
    plain = statistics.median(wall for wall, _, _ in rows["plain"])
    print("(c) %s to %d host%s, links %s, app image %.1f MiB, %d runs, medians (load average %s)" % (
        what, count, "s" * (count != 1), rate, full / 2**20, len(rows["plain"]),
        ", ".join("%.1f" % load for load in rows["load"])))
    for side in SIDES:
        wall = statistics.median(wall for wall, _, _ in rows[side])
        per_link = statistics.median(statistics.mean(sent) for _, sent, _ in rows[side])
        most = statistics.median(max(sent) for _, sent, _ in rows[side])
        cpu = [seconds for _, _, seconds in rows[side] if seconds is not None]
        print("    %-40s wall %6.2f s   per link %9s (most %9s)   %.3fx (b)%s" % (
            SIDE_NAMES[side], wall, human_size(per_link), human_size(most), wall / plain,
            "   doit's processor %.2f s" % statistics.median(cpu) if cpu else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1100)
    parser.add_argument("--only", choices=["save", "load", "many"])
    parser.add_argument("--hosts", default="1,3,6", help="host counts for (c), e.g. 1,3,6")
    parser.add_argument("--base-mib", type=int, default=64, help="size of the app's base layer for (c)")
    parser.add_argument("--rate", default="100mbit", help="each host's link for (c), as tc tbf reads it")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-ship-")
    try:
        if args.only in (None, "many"):
            bench_many(work, args.runs, [int(n) for n in args.hosts.split(",")], args.base_mib, args.rate)
        if args.only in (None, "save"):
            bench_save(work, args.runs, args.size_mib)
        if args.only in (None, "load"):
            hostb = HostB(os.path.join(work, "hostb"))
            os.makedirs(hostb.root)
            try:
                hostb.start()
                bench_load(work, args.runs, hostb)
            finally:
                hostb.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
