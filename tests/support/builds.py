"""What engine tests of builds share: the legacy builder's switch, and the RUNs a
stopped build may have left behind under either builder."""
import subprocess
import time

# DOCKER_BUILDKIT=0: the legacy builder, whose RUNs are containers the engine lists.
LEGACY_BUILDER = {"DOCKER_BUILDKIT": "0"}
BUILDERS = [{}, LEGACY_BUILDER]  # pytest ids: see BUILDER_IDS
BUILDER_IDS = ["buildkit", "legacy"]


def left_running(docker_cli, marker):
    """The RUN commands holding `marker` still there: a container the engine lists (the
    legacy builder's), or a process on this machine (BuildKit's RUNs are not listed).
    BuildKit stops a RUN once it sees its client gone: its processes get a few seconds."""
    def processes():
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
        return [line for line in listing if marker in line and not line.startswith("ps ")]

    give_up = time.monotonic() + 20  # a hang guard, not a measure
    while processes() and time.monotonic() < give_up:
        time.sleep(0.2)
    containers = docker_cli("ps", "-a", "--no-trunc", "--format", "{{.Command}}").splitlines()
    return [command for command in containers if marker in command] + processes()
