#!/usr/bin/env python3
"""Benchmark: dockflow beside the lab's Makefile and build.sh, same engine, same run.

    python3 bench/bench_build.py [--runs 10] [--cases noop,cold,incremental,rmi,scale,parallel]
                                 [--scale 100,500,2000]

Each case runs both sides several times and prints medians and the ratio
dockflow / baseline. Baselines (bench/make-lab/, copied from the lab):
  make      the Makefile with stamp files (fast, but blind to `docker rmi`)
  build.sh  always calls `docker build` (correct; pays a cached build per image)
  floor     `doit` with a one-task dodo.py that does nothing: what doit alone costs here
It builds and removes only the lab's images (basic-base, basic-app, lab/busybox:1.35,
lab/basic-app:*, localhost:<its ports>/basic-app:*) and images named bench-*, and runs
two registry containers, bench-registry-dockflow and bench-registry-make, on free ports
(removed at the end); nothing else in the engine is touched.
Bytecode caching is on, as on a user's machine (PYTHONDONTWRITEBYTECODE is dropped).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_LAB = os.path.join(REPO, "bench", "make-lab")
LAB_IMAGES = ["basic-app", "basic-base", "lab/busybox:1.35"]
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = REPO
sys.path.insert(0, REPO)

from tests.support.registry import free_port, wait_answers  # noqa: E402


def sh(command, cwd=None, check=True, env=None):
    done = subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit("bench: %s failed (%d):\n%s%s" % (" ".join(command), done.returncode,
                                                           done.stdout[-3000:], done.stderr[-3000:]))
    return done


def timed(command, cwd, prepare=None, runs=10):
    """Median wall seconds of `command` over `runs` runs; `prepare()` runs untimed before each."""
    return statistics.median(once(command, cwd, prepare) for _ in range(runs))


def once(command, cwd, prepare=None):
    if prepare:
        prepare()
    start = time.perf_counter()
    sh(command, cwd=cwd)
    return time.perf_counter() - start


def timed_in_turns(*sides, runs, spread=None):
    """The median of each side, the sides run in turns (ours, make, ours, make...), so
    that other load on a shared machine weighs on all alike. Each side: (command, cwd, prepare).
    `spread`, a list, receives each side's samples (in the order of `sides`)."""
    samples = [once(*side) for _ in range(runs) for side in sides]
    per_side = [samples[index::len(sides)] for index in range(len(sides))]
    if spread is not None:
        spread.extend(per_side)
    return tuple(statistics.median(side) for side in per_side)


def load_average():
    """The machine's 1-minute load average, as uptime shows it: what else ran beside the bench."""
    return "%.2f" % os.getloadavg()[0]


def remove_lab_images():
    sh(["docker", "rmi", "-f", *LAB_IMAGES], check=False)
    remove_images("lab/basic-app")


def make_project(root):
    """A copy of this project's workflows in a git repository (the tag step names the commit)."""
    project = os.path.join(root, "dockflow-lab")
    shutil.copytree(os.path.join(REPO, "workflows"), os.path.join(project, "workflows"))
    shutil.copy(os.path.join(REPO, "dodo.py"), project)
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=bench", "-c", "user.email=bench@invalid", "commit", "-qm", "lab"]):
        sh(command, cwd=project)
    return project


def make_copy(root):
    copy = os.path.join(root, "make-lab")
    shutil.copytree(MAKE_LAB, copy)
    return copy


def floor_project(root):
    floor = os.path.join(root, "floor")
    os.makedirs(floor)
    with open(os.path.join(floor, "dodo.py"), "w") as handle:
        handle.write("def task_nothing():\n    return {'actions': [], 'uptodate': [True]}\n")
    return floor


def row(case, ours, baseline_name, baseline):
    ratio = ours / baseline if baseline else float("inf")
    print("%-34s dockflow %8.3f s   %-9s %8.3f s   ratio %5.2fx" % (case, ours, baseline_name, baseline, ratio),
          flush=True)


DOIT = [sys.executable, "-m", "doit"]


def case_noop(project, make_dir, floor, runs):
    print("\n# 1. no-op: everything up to date (medians of %d)" % runs)
    sh(DOIT + ["build_app"], cwd=project)
    ours = timed(DOIT + ["build_app"], project, runs=runs)
    floor_time = timed(DOIT + ["nothing"], floor, runs=runs)
    sh(["sh", "build.sh"], cwd=make_dir)
    build_sh = timed(["sh", "build.sh"], make_dir, runs=runs)
    sh(["make", "build_app"], cwd=make_dir)
    make = timed(["make", "build_app"], make_dir, runs=runs)
    row("no-op doit build_app", ours, "build.sh", build_sh)
    row("no-op doit build_app", ours, "make", make)
    row("no-op doit build_app", ours, "floor", floor_time)
    sh(DOIT + ["build_app"], cwd=project)  # leave our images in place for the next case


class Lab:
    """Both sides' way to run every lab step (Makefile `all`: base image, basic-base,
    basic-app, tag, save, copy, load, registry, push), each with its own registry
    container on its own port, so neither side finds the other's layers and a
    registry of yours on port 5000 is never touched. Not the same work in one place:
    make's `docker load` into the same engine always runs, ours is up to date (the
    engine has that image id already)."""

    def __init__(self, project, make_dir):
        self.project, self.make_dir = project, make_dir
        ours = free_port()
        theirs = free_port()
        while theirs == ours:
            theirs = free_port()
        self.ours_vars = ["registry_name=bench-registry-dockflow", "registry_port=%d" % ours]
        self.make_vars = ["REGISTRY_NAME=bench-registry-make", "REGISTRY_PORT=%d" % theirs]
        self.registry_ports = (ours, theirs)

    def start(self):
        # The Makefile cannot make registry:2 offline; our import step can, for both.
        sh(DOIT + ["registry_image"], cwd=self.project)
        sh(DOIT + ["registry_up"] + self.ours_vars, cwd=self.project)
        sh(["make", "registry_up"] + self.make_vars, cwd=self.make_dir)
        wait_answers("127.0.0.1:%d" % self.registry_ports[1], seconds=10)  # make's push does not wait for it


    def ours(self, *options, env=()):
        """`doit OPTIONS push load`; env: NAME=value pairs put before it (env(1))."""
        return (["env", *env] if env else []) + DOIT + list(options) + ["push", "load"] + self.ours_vars

    def make(self):
        return ["make", "all"] + self.make_vars

    def make_with_registry(self):
        """make's own registry start (`make registry_up`, its `docker run -d`), a wait
        until the registry answers (the Makefile's push does not wait, and fails now and
        then), then `make all` (-o registry_up: its `docker inspect` is not asked twice)."""
        return ["sh", "-c", "make registry_up %s && tries=0 && until curl -sf -o /dev/null http://127.0.0.1:%d/v2/; "
                            "do tries=$((tries + 1)); [ $tries -lt 1500 ] || exit 1; sleep 0.02; done "
                            "&& make all -o registry_up %s"
                % (" ".join(self.make_vars), self.registry_ports[1], " ".join(self.make_vars))]

    def empty(self, side, registry_up=True):
        """A cold start: no lab image in the engine, no file the lab made, each side's
        registry new and empty. (Started here, not timed: make pushes as soon as its
        `docker run` returns, before the registry answers, and fails now and then.)
        With registry_up=False no registry container at all: the run starts it. The
        registry:2 image stays (the Makefile cannot make it offline).
        Our project's .dockflow/ stays, as on a developer's machine. BuildKit's build
        cache goes too (ours builds with BuildKit; `docker rmi` leaves its cache)."""
        remove_lab_images()
        sh(["docker", "builder", "prune", "-af"], check=False)
        self.stop()
        if registry_up:
            self.start()
        else:
            sh(DOIT + ["registry_image"], cwd=self.project)
        if side == "make":
            sh(["make", "clean"], cwd=self.make_dir)
        else:
            shutil.rmtree(os.path.join(self.project, "build"), ignore_errors=True)

    def stop(self):
        for port in self.registry_ports:
            for pattern in ("localhost:%d/*" % port, "localhost:%d/*/*" % port):
                remove_images(pattern)
                # a pushed image keeps its registry name as a digest once its tag is gone
                digests = sh(["docker", "images", "--digests", "--format", "{{.Repository}}@{{.Digest}}",
                              pattern]).stdout.split()
                if digests:
                    sh(["docker", "rmi", *digests], check=False)
        for name in ("bench-registry-dockflow", "bench-registry-make"):
            sh(["docker", "rm", "-f", "-v", name], check=False)
        sh(["docker", "volume", "rm", "bench-registry-dockflow-data"], check=False)


def builders_differ():
    client = sh(["docker", "version", "-f", "{{.Client.Version}}"], check=False).stdout.strip() or "?"
    return ("  not the same builder: ours asks the engine's BuildKit, as `docker build` does since Engine 23; "
            "make's `docker build` gets the legacy builder here (docker CLI %s, no buildx plugin on this machine). "
            "DOCKER_BUILDKIT=0 doit: ours with make's builder" % client)


LOAD_DIFFERS = ("  not the same work: make's `docker load` into this engine always runs; ours is up to date "
                "(the engine has that image id)")


def floor_bound(floor_time, make_time):
    """doit's own start-up beside make's time: what any tool run by doit pays on top."""
    print("  doit alone starts in %.3f s here: %.0f%% of make's %.3f s before any step runs"
          % (floor_time, 100 * floor_time / make_time, make_time))


COLD_GOAL = 0.85  # issue 14: a cold run of every lab step within 0.85x `make all`


def case_cold(lab, floor, runs):
    runs = max(5, min(runs, 10))  # a cold turn is ~10 s a side; fewer than 5 say nothing on a shared machine
    print("\n# 2. cold: no lab image in the engine -> every lab step done (medians of %d turns; load average %s)"
          % (runs, load_average()))
    lab.start()
    samples = []
    ours, serial, legacy, make = timed_in_turns(
        (lab.ours(), lab.project, lambda: lab.empty("ours")),
        (lab.ours("-n", "0"), lab.project, lambda: lab.empty("ours")),
        (lab.ours(env=["DOCKER_BUILDKIT=0"]), lab.project, lambda: lab.empty("ours")),
        (lab.make(), lab.make_dir, lambda: lab.empty("make")), runs=runs, spread=samples)
    row("cold doit push load", ours, "make all", make)
    row("cold doit -n 0 push load", serial, "make all", make)
    row("cold DOCKER_BUILDKIT=0 doit push load", legacy, "make all", make)
    ratios = sorted(o / m for o, m in zip(samples[0], samples[3]))
    print("  each turn's ratio doit push load / make all: %s (goal <= %.2fx; median of the turns %.2fx)"
          % (" ".join("%.2f" % r for r in ratios), COLD_GOAL, statistics.median(ratios)))
    for name, side in zip(("doit push load", "doit -n 0 push load", "DOCKER_BUILDKIT=0 doit", "make all"), samples):
        print("  %-22s s: %s" % (name, " ".join("%.2f" % seconds for seconds in side)))
    print("  load average after: %s (2 cores: above 2, other work shares the engine and the CPU)" % load_average())
    print("  doit push load runs the lab's two independent chains at once (worker processes); "
          "doit -n 0 runs one step at a time")
    print(builders_differ())
    print(LOAD_DIFFERS)
    samples = []
    ours, make = timed_in_turns((lab.ours(), lab.project, lambda: lab.empty("ours", registry_up=False)),
                                (lab.make_with_registry(), lab.make_dir, lambda: lab.empty("make", registry_up=False)),
                                runs=runs, spread=samples)
    row("cold, registry too: doit push load", ours, "make", make)
    print("  the registry container started in the run as well (its image stays): ours beside the builds, "
          "make's `docker run -d` and a wait until it answers before `make all`; turns: %s"
          % " ".join("%.2f" % (o / m) for o, m in zip(*samples)))
    print("  load average after: %s" % load_average())
    floor_bound(timed(DOIT + ["nothing"], floor, runs=runs), make)
    ours, make = timed_in_turns((DOIT + ["tag"], lab.project, lambda: lab.empty("ours")),
                                (["make", "build/tag.stamp"], lab.make_dir, lambda: lab.empty("make")), runs=runs)
    row("cold, images only: doit tag", ours, "make", make)


_edits = iter(range(1, 10 ** 6))


def _bump(path):
    """A VERSION never seen before: the rebuild is real, not served by the build cache.
    In our project it is committed too, as a release would be (the tag step then makes
    a new git-commit tag rather than moving the old one)."""
    with open(path, "w") as handle:
        handle.write("1.%d.%d\n" % (os.getpid() % 1000, next(_edits)))
    folder = os.path.dirname(path)
    if os.path.isdir(os.path.join(folder, "..", "..", "..", ".git")) and "workflows" in path:
        sh(["git", "-c", "user.name=bench", "-c", "user.email=bench@invalid", "commit", "-qam", "bump"], cwd=folder)


def steps_run(output):
    """The steps a doit run did (its `.  name` lines), in order."""
    return [line[3:].strip() for line in output.splitlines() if line.startswith(".  ")]


def case_incremental(lab, floor, runs):
    runs = max(1, min(runs, 9))
    print("\n# 3. incremental: the app's VERSION edited to a new value (medians of %d)" % runs)
    lab.start()
    floor_time = timed(DOIT + ["nothing"], floor, runs=runs)
    ours, make, ran = incremental(lab, lab.ours(), lab.make(), runs)
    row("incremental doit push load", ours, "make all", make)
    print(LOAD_DIFFERS)
    print("  after an edit, doit runs only: %s" % ", ".join(ran))
    floor_bound(floor_time, make)
    ours, make, ran = incremental(lab, DOIT + ["build_app"], ["make", "build_app"], runs)
    row("incremental, image only: build_app", ours, "make", make)
    print("  after an edit, doit runs only: %s" % ", ".join(ran))
    floor_bound(floor_time, make)


def incremental(lab, ours_command, make_command, runs):
    """(our median, make's median, the steps our last run did), the two sides timed in
    turns. Both build the same image names. Make runs first from clean; ours then
    replaces the base images with its own, which make's stamps never notice. From then
    on each edit makes each side rebuild basic-app and what follows, and nothing else."""
    our_version = os.path.join(lab.project, "workflows/lab/app/VERSION")
    make_version = os.path.join(lab.make_dir, "app/VERSION")
    sh(["make", "clean"], cwd=lab.make_dir)
    _bump(make_version)
    sh(make_command, cwd=lab.make_dir)
    _bump(our_version)  # a version tag of the other side's image is never moved
    sh(ours_command, cwd=lab.project)
    ours, make = timed_in_turns((ours_command, lab.project, lambda: _bump(our_version)),
                                (make_command, lab.make_dir, lambda: _bump(make_version)), runs=runs)
    _bump(our_version)
    ran = steps_run(sh(ours_command, cwd=lab.project).stdout)
    return ours, make, ran


def case_rmi(project, make_dir):
    print("\n# 4. after `docker rmi basic-app`: does each side rebuild?")
    sh(DOIT + ["build_app"], cwd=project)
    sh(["docker", "rmi", "basic-app"])
    ours = "rebuilt" in sh(DOIT + ["build_app"], cwd=project).stdout.replace("building basic-app", "rebuilt")
    sh(["make", "build_app"], cwd=make_dir)
    sh(["docker", "rmi", "basic-app"])
    make_output = sh(["make", "build_app"], cwd=make_dir).stdout
    has_image = bool(sh(["docker", "images", "-q", "basic-app"]).stdout.strip())
    print("  dockflow: %s" % ("rebuilt basic-app" if ours else "did NOT rebuild basic-app"))
    print("  make:     %s (%s)" % ("rebuilt basic-app" if has_image else "did NOT rebuild basic-app: its stamp says done",
                                  make_output.strip() or "no output"))
    sh(DOIT + ["build_app"], cwd=project)


def scale_workflow(count, shape):
    """`count` tag steps over one built image: a chain (each tags the previous) or a wide tree."""
    lines = ["steps:",
             "  root:", "    kind: build", "    context: ctx", "    image: bench-scale/root:0"]
    for index in range(1, count):
        source = "bench-scale/%s:%d" % (shape, index - 1) if shape == "chain" and index > 1 else "bench-scale/root:0"
        lines += ["  s%d:" % index, "    kind: tag", "    source: %s" % source, "    force: true",
                  "    tags: [\"bench-scale/%s:%d\"]" % (shape, index)]
    return "\n".join(lines) + "\n"


def remove_images(pattern):
    names = sh(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", pattern]).stdout.split()
    for start in range(0, len(names), 200):
        sh(["docker", "rmi", "-f", *names[start:start + 200]], check=False)


def case_scale(root, sizes, runs):
    print("\n# 5. scale: generated workflows of N image steps (medians of %d)" % runs)
    remove_images("bench-scale/*")
    busybox = "lab/busybox:1.35"
    for shape in ("chain", "wide"):
        for size in sizes:
            project = os.path.join(root, "scale-%s-%d" % (shape, size))
            os.makedirs(os.path.join(project, "workflows", "ctx"))
            shutil.copy(os.path.join(REPO, "dodo.py"), project)
            with open(os.path.join(project, "workflows", "ctx", "Dockerfile"), "w") as handle:
                handle.write("FROM %s\n" % busybox)
            with open(os.path.join(project, "workflows", "scale.yaml"), "w") as handle:
                handle.write(scale_workflow(size, shape))
            start = time.perf_counter()
            sh(DOIT + [], cwd=project)
            first = time.perf_counter() - start
            listing = timed(DOIT + ["list"], project, runs=runs)
            noop = timed(DOIT + [], project, runs=runs)
            print("  %-5s %5d steps: first run %7.2f s   doit list %6.3f s   no-op %6.3f s   (%.2f ms/step)"
                  % (shape, size, first, listing, noop, 1000 * noop / size), flush=True)
    remove_images("bench-scale/*")


def case_parallel(root, runs):
    runs = max(1, min(runs, 3))
    print("\n# 6. parallel: four independent images, each build about 2 s (medians of %d)" % runs)
    project = os.path.join(root, "parallel")
    os.makedirs(os.path.join(project, "workflows", "ctx"))
    shutil.copy(os.path.join(REPO, "dodo.py"), project)
    with open(os.path.join(project, "workflows", "ctx", "Dockerfile"), "w") as handle:
        handle.write("FROM lab/busybox:1.35\nARG RUN_ID\nRUN sleep 2 && echo $RUN_ID > /id\n")
    steps = ["vars:", "  run_id: {env: RUN_ID, default: '0'}", "steps:"]
    for index in range(4):
        steps += ["  p%d:" % index, "    kind: build", "    context: ctx", "    image: bench-parallel/p%d" % index,
                  "    args: {RUN_ID: \"${run_id}-%d\"}" % index]
    with open(os.path.join(project, "workflows", "parallel.yaml"), "w") as handle:
        handle.write("\n".join(steps) + "\n")
    counter = iter(range(10 ** 6))

    def fresh():  # a new RUN_ID: every build really runs
        ENV["RUN_ID"] = "%d-%d" % (os.getpid(), next(counter))

    single = timed(DOIT + ["p0"], project, prepare=fresh, runs=runs)
    serial = timed(DOIT + ["p0", "p1", "p2", "p3"], project, prepare=fresh, runs=runs)
    parallel = timed(DOIT + ["-n", "4", "-P", "process", "p0", "p1", "p2", "p3"], project, prepare=fresh, runs=runs)
    row("doit -n 4 (4 builds)", parallel, "1 build", single)
    row("doit -n 4 (4 builds)", parallel, "serial", serial)
    ENV.pop("RUN_ID", None)
    remove_images("bench-parallel/*")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cases", default="noop,cold,incremental,rmi,scale,parallel")
    parser.add_argument("--scale", default="100,500,2000")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if sh(["docker", "info"], check=False).returncode != 0:
        raise SystemExit("bench: no Docker engine answers (python3 -m tasks.bootstrap starts one)")
    print("engine: %s; python %s; %d cores" % (
        sh(["docker", "version", "-f", "{{.Server.Version}}"]).stdout.strip(), sys.version.split()[0], os.cpu_count()))
    with tempfile.TemporaryDirectory(prefix="dockflow-bench-") as root:
        project, make_dir, floor = make_project(root), make_copy(root), floor_project(root)
        if "noop" in cases:
            case_noop(project, make_dir, floor, args.runs)
        lab = Lab(project, make_dir)
        lab.stop()  # the registries an interrupted bench left (make's registry_up would keep its old port)
        try:
            if "cold" in cases:
                case_cold(lab, floor, args.runs)
            if "incremental" in cases:
                case_incremental(lab, floor, args.runs)
        finally:
            lab.stop()
        if "rmi" in cases:
            case_rmi(project, make_dir)
        if "scale" in cases:
            sh(DOIT + ["base_rootfs"], cwd=project)
            case_scale(root, [int(n) for n in args.scale.split(",")], max(3, args.runs // 3))
        if "parallel" in cases:
            sh(DOIT + ["base_rootfs"], cwd=project)
            case_parallel(root, args.runs)
        sh(DOIT + ["build_app"], cwd=project)


if __name__ == "__main__":
    main()
