"""Helpers the engine tests share: engines, host B, registries, shipping."""


def image_id(docker_cli, ref):
    """The id of the image `ref` names in the engine under test (docker_cli fixture)."""
    return docker_cli("image", "inspect", "-f", "{{.Id}}", ref).strip()
