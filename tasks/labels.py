"""Every Docker label dockflow writes or reads, in one place.

Images:
- INPUTS_LABEL: the digest of what made an image (import, commit, a build with
  cache_from); an image whose label equals the digest of its inputs now is up to date.
- KEEP_LABEL: prune never removes an image carrying it (a step's keep_label may name another).
Containers:
- PROJECT_LABEL: the project folder of the step that started it, so prune's
  `containers: true` removes only this project's stopped containers.
- TEMPORARY_LABEL: the step of a container made only for a moment (commit, copy_out).
- RUN_LABEL: `host:pid` of the run that made it, so the next run sweeps what a killed one left.
- REGISTRY_LABEL: the definition digest of a registry step's container ("data" on its volume).
- REGISTRY_IMAGE_LABEL: the image id that container was made from.
"""
INPUTS_LABEL = "io.dockflow.inputs"
KEEP_LABEL = "io.dockflow.keep"
PROJECT_LABEL = "io.dockflow.project"
TEMPORARY_LABEL = "io.dockflow.temporary"
RUN_LABEL = "io.dockflow.run"
REGISTRY_LABEL = "io.dockflow.registry"
REGISTRY_IMAGE_LABEL = "io.dockflow.registry.image"
