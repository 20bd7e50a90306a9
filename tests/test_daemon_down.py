"""No Docker engine at the address tried: one line naming it, exit 1, no traceback."""
import socket


def test_build_with_no_engine_listening(tmp_path, offline_project):
    sock_path = str(tmp_path / "silent.sock")
    # A socket file that exists but where nothing listens any more: connection refused.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.close()
    offline_project.docker_host = "unix://" + sock_path
    offline_project.write("app/Dockerfile", "FROM scratch\nCOPY . /\n")
    offline_project.workflow("""
        steps:
          build_app: {kind: build, context: ../app, image: dockflow-down/app}
        """)
    done = offline_project.doit("build_app")
    assert done.returncode == 1, done.output
    failures = [line for line in done.output.splitlines() if line.startswith("FAILED")]
    assert failures == ["FAILED build_app: cannot reach the Docker engine at unix://%s (Connection refused): "
                        "is dockerd running there? Set DOCKER_HOST or the step's docker_host to use another "
                        "engine" % sock_path], done.output
    assert "Traceback" not in done.output


def test_no_socket_file_at_all(offline_project):
    offline_project.write("app/Dockerfile", "FROM scratch\n")
    offline_project.workflow("steps:\n  build_app: {kind: build, context: ../app, image: dockflow-down/app}\n")
    done = offline_project.doit("build_app")
    assert done.returncode == 1, done.output
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock (No such file or directory)" \
        in done.output
    assert "Traceback" not in done.output
