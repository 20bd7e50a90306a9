"""tag against a real engine: version tags do not move unless forced."""
import re
import subprocess

import pytest

from tests.support import image_id

pytestmark = pytest.mark.engine


def two_images(docker_cli, busybox_image, names):
    """Two different images, NAMES/app and NAMES/other."""
    docker_cli("tag", busybox_image, names + "/app")
    docker_cli("import", "-c", "LABEL which=other", "-", names + "/other",
               input=_empty_tar())
    return image_id(docker_cli, names + "/app"), image_id(docker_cli, names + "/other")


def _empty_tar():
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("marker")
        archive.addfile(info, io.BytesIO(b""))
    return buffer.getvalue()


def tag_flow(project, names, source="app", force=False, tags=("${version}",)):
    project.write("VERSION", "1.0.0\n")
    project.workflow("""
        vars:
          version: {file: ../VERSION, semver: true}
          commit: {git: commit}
        steps:
          tag:
            kind: tag
            source: %s/%s
            tags: [%s]
            force: %s
        """ % (names, source, ", ".join('"%s/rel:%s"' % (names, t) for t in tags), "true" if force else "false"))


def test_tag_run_twice(project, names, busybox_image, docker_cli):
    app_id, _ = two_images(docker_cli, busybox_image, names)
    tag_flow(project, names)
    first = project.doit("tag")
    assert first.returncode == 0, first.output
    assert "tagging %s/app (%s) as %s/rel:1.0.0" % (names, app_id[7:19], names) in first.output
    assert image_id(docker_cli, names + "/rel:1.0.0") == app_id
    second = project.doit("tag")
    assert second.returncode == 0, second.output
    assert "-- tag" in second.output and "tagging" not in second.output


def test_moving_a_version_tag_is_refused_unless_forced(project, names, busybox_image, docker_cli):
    app_id, other_id = two_images(docker_cli, busybox_image, names)
    tag_flow(project, names)
    assert project.doit("tag").returncode == 0
    tag_flow(project, names, source="other")
    refused = project.doit("tag")
    assert refused.returncode == 1, refused.output
    assert ("%s/rel:1.0.0 already names another image (%s), not %s/other (%s); a version tag is not moved: "
            "bump the version or set force: true" % (names, app_id[7:19], names, other_id[7:19])) in refused.output
    assert "workflows/flow.yaml:9:5: steps.tag.tags" in refused.output
    assert "Traceback" not in refused.output
    assert image_id(docker_cli, names + "/rel:1.0.0") == app_id
    tag_flow(project, names, source="other", force=True)
    forced = project.doit("tag")
    assert forced.returncode == 0, forced.output
    assert image_id(docker_cli, names + "/rel:1.0.0") == other_id
    assert "-- tag" in project.doit("tag").output


def test_latest_moves_with_a_warning(project, names, busybox_image, docker_cli):
    app_id, other_id = two_images(docker_cli, busybox_image, names)
    tag_flow(project, names, tags=("latest",))
    first = project.doit("tag")
    assert first.returncode == 0, first.output
    assert "warning: %s/rel:latest is a moving target" % names in first.output
    tag_flow(project, names, source="other", tags=("latest",))
    moved = project.doit("tag")
    assert moved.returncode == 0, moved.output
    assert "moving target" in moved.output
    assert image_id(docker_cli, names + "/rel:latest") == other_id


def test_version_that_is_not_semver_fails_clearly(project, names, busybox_image, docker_cli):
    two_images(docker_cli, busybox_image, names)
    tag_flow(project, names)
    project.write("VERSION", "1.0\n")
    done = project.doit("tag")
    assert done.returncode != 0, done.output
    # where the variable is declared, and the file as the user names it
    assert re.search(r"workflows/flow\.yaml:\d+:\d+: vars\.version: VERSION holds '1\.0', not a semantic "
                     r"version like 1\.0\.0", done.output), done.output
    assert "Traceback" not in done.output
    assert docker_cli("images", "-q", names + "/rel:1.0").strip() == ""


def test_command_line_version_override_is_checked(project, names, busybox_image, docker_cli):
    app_id, _ = two_images(docker_cli, busybox_image, names)
    tag_flow(project, names)
    assert project.doit("tag", "version=2.1.0").returncode == 0
    assert image_id(docker_cli, names + "/rel:2.1.0") == app_id
    bad = project.doit("tag", "version=two")
    assert bad.returncode != 0 and "the command line holds 'two', not a semantic version" in bad.output


def test_tag_names_the_git_commit(project, names, busybox_image, docker_cli):
    app_id, _ = two_images(docker_cli, busybox_image, names)
    git = ["git", "-C", project.root, "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "one"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    tag_flow(project, names, tags=("${version}", "${commit}"))
    done = project.doit("tag")
    assert done.returncode == 0, done.output
    assert image_id(docker_cli, "%s/rel:%s" % (names, head[:7])) == app_id
    assert image_id(docker_cli, "%s/rel:1.0.0" % names) == app_id
    assert "-- tag" in project.doit("tag").output


def test_missing_source_says_which_step_makes_it(project, names):
    tag_flow(project, names)
    done = project.doit("tag")
    assert done.returncode == 1, done.output
    assert "steps.tag.source: source image %s/app is not in the engine" % names in done.output
    assert "Traceback" not in done.output


def test_a_moving_tag_moves_and_a_version_tag_still_does_not(project, names, busybox_image, docker_cli):
    """The lab's commit tag: an edit built and tagged before it is committed moves it."""
    app_id, other_id = two_images(docker_cli, busybox_image, names)
    flow = """
        steps:
          tag:
            kind: tag
            source: %(n)s/%(source)s
            tags: ["%(n)s/rel:abc1234"%(version)s]
            moving: ["%(n)s/rel:abc1234"]
        """
    project.workflow(flow % {"n": names, "source": "app", "version": ""})
    assert project.doit("tag").returncode == 0
    project.workflow(flow % {"n": names, "source": "other", "version": ""})
    moved = project.doit("tag")
    assert moved.returncode == 0, moved.output
    assert "moving %s/rel:abc1234 from %s to %s" % (names, app_id[7:19], other_id[7:19]) in moved.output
    assert image_id(docker_cli, names + "/rel:abc1234") == other_id
    project.workflow(flow % {"n": names, "source": "app", "version": ', "%s/rel:1.0.0"' % names})
    assert project.doit("tag").returncode == 0
    project.workflow(flow % {"n": names, "source": "other", "version": ', "%s/rel:1.0.0"' % names})
    refused = project.doit("tag")
    assert refused.returncode == 1 and "a version tag is not moved" in refused.output


def test_a_moving_tag_must_be_one_of_the_tags(project, names):
    project.workflow("""
        steps:
          tag: {kind: tag, source: %(n)s/app, tags: ["%(n)s/rel:1"], moving: ["%(n)s/rel:2"]}
        """ % {"n": names})
    done = project.doit("tag")
    assert done.returncode == 3, done.output
    assert "steps.tag.moving.0: '%s/rel:2' is not one of this step's tags" % names in done.output
