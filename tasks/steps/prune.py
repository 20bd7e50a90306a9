"""prune: give back the disk that rebuilds fill (Exercise 3.01's dangling images).

What it removes, as the step says:
  dangling: true (default)  untagged images nothing builds on, and the untagged
                            intermediate images under them (`docker image prune`)
  unused: true              also tagged images no container uses (`prune -a`)
  keep_last: N              per repository the workflows build, all tags but the
                            newest N (by image creation time)
  containers: true          stopped containers of this project's own runs
                            (label io.dockflow.project=<project folder>)
  build_cache: true         the engine's build cache
Filters narrow every image choice: older_than ("72h", "7d"), labels (all must
match, "key" or "key=value") and not_labels (none may match).

What it never removes, whatever the policy says: an image that any workflow in
workflows/ names as an output, an image a running container uses, an image with
the keep label (io.dockflow.keep, or the step's keep_label). An image a stopped
container uses is left too (the engine refuses), unless that container is one of
ours being removed.

dry_run: true, or `doit prune dry_run=true`, lists what would go and the bytes it
would free, and removes nothing. Bytes are layer sizes as the engine reports them:
a layer counts when no image that stays uses it (the engine's own rule for
SpaceReclaimed). A real run counts the layers the engine says it deleted, reports
on the terminal and as one JSON line (`"event": "dockflow.prune"`).

A prune is never up to date, and holds the project's lock exclusively (tasks/lock.py)
so it never runs beside a build or push of the same project.
"""
import re
import time

from .. import engine, refs, ui
from ..errors import StepFailed
from . import PROJECT_LABEL, Verdict, project_dir

ALWAYS_RUN = True
COMMAND_LINE_SWITCHES = ("dry_run",)  # `doit prune dry_run=true`
KEEP_LABEL = "io.dockflow.keep"
AGE_RE = re.compile(r"^([0-9]+)([smhdw])$")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
STOPPED = ("created", "exited", "dead")


def outputs(step):
    return []


def inputs(step):
    return []


def problems(step):
    found = []
    if step.spec.get("older_than") is not None and not AGE_RE.match(str(step.get("older_than"))):
        found.append("%s: %r is not an age like 30m, 72h, 7d or 2w"
                     % (step.where("older_than"), step.get("older_than")))
    return found


def check(step, saved):
    return Verdict(False)  # never up to date: a prune runs each time it is asked


def exclusive(step):
    """A real prune takes the project's lock alone; a dry run removes nothing and shares it."""
    return not is_dry_run(step)


def is_dry_run(step):
    forced = step.workflow.variables.override("dry_run")  # `doit prune dry_run=true`
    value = forced if forced is not None else step.get("dry_run", False)
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def run(step, verdict):
    docker = engine.for_step(step)
    dry_run = is_dry_run(step)
    try:
        survey = Survey(step, docker)
        plan = survey.decide()
        if dry_run:
            report = plan.report(dry_run=True)
        else:
            report = _carry_out(step, docker, survey, plan)
    except docker.sdk_errors() as err:
        raise docker.failure("%s: prune on %s" % (step.name, docker.host), err) from None
    _tell(step, docker, report, dry_run)
    return {"dry_run": dry_run, "bytes": report["bytes"], "removed": len(report["images"])
            + len(report["tags"]) + len(report["containers"])}


class Policy:
    def __init__(self, step):
        self.dangling = bool(step.get("dangling", True))
        self.unused = bool(step.get("unused", False))
        self.keep_last = step.get("keep_last")
        self.containers = bool(step.get("containers", False))
        self.build_cache = bool(step.get("build_cache", False))
        self.keep_label = step.get("keep_label", KEEP_LABEL)
        self.labels = [_label_pair(text) for text in step.get("labels", [])]
        self.not_labels = [_label_pair(text) for text in step.get("not_labels", [])]
        age = step.get("older_than")
        self.until = None
        if age is not None:
            match = AGE_RE.match(str(age))
            if not match:
                raise StepFailed("%s: %r is not an age like 72h or 7d" % (step.where("older_than"), age))
            self.until = time.time() - int(match.group(1)) * AGE_UNITS[match.group(2)]
        self.older_than = age

    def chooses(self, image):
        """Do the filters let this image be removed?"""
        labels = image.get("Labels") or {}
        if self.until is not None and image.get("Created", 0) > self.until:
            return False
        if not all(_has_label(labels, pair) for pair in self.labels):
            return False
        return not any(_has_label(labels, pair) for pair in self.not_labels)


def _label_pair(text):
    key, sep, value = str(text).partition("=")
    return key, value if sep else None


def _has_label(labels, pair):
    key, value = pair
    return key in labels and (value is None or labels[key] == value)


class Survey:
    """One look at the engine: images, containers, and what the workflows name."""

    def __init__(self, step, docker):
        from .. import plan

        self.step = step
        self.docker = docker
        self.policy = Policy(step)
        self.project_dir = project_dir()
        api = docker.api
        self.images = {image["Id"]: image for image in api.images(all=True)}
        self.containers = api.containers(all=True)
        self.children = {}
        for image in self.images.values():
            if image.get("ParentId"):
                self.children.setdefault(image["ParentId"], []).append(image["Id"])
        self.named = self._named_outputs(plan._steps)
        self.named_ids = {}
        for ref in self.named:
            image_id = docker.image_id(ref)
            if image_id:
                self.named_ids.setdefault(image_id, ref)

    def _named_outputs(self, all_steps):
        """Every image ref any workflow step makes, normalised; unresolvable ones refuse a
        tag prune (we could not tell what a workflow still needs)."""
        from . import module_for

        named, unknown = set(), []
        for other in all_steps.values():
            try:
                made = module_for(other.kind).outputs(other)
            except StepFailed as err:
                unknown.append("%s (%s)" % (other.name, err))
                continue
            named.update(refs.normalize(value) for kind, value in made if kind == "image")
        if unknown and (self.policy.unused or self.policy.keep_last is not None):
            raise StepFailed("%s: cannot tell which images %s make(s); prune removes no tagged image "
                             "while a workflow's outputs are unknown" % (self.step.name, ", ".join(unknown)))
        return named

    # --- decisions ----------------------------------------------------------
    def decide(self):
        policy = self.policy
        plan = Plan(self)
        if policy.containers:
            for container in self.containers:
                labels = container.get("Labels") or {}
                if (container.get("State") in STOPPED and labels.get(PROJECT_LABEL) == self.project_dir
                        and (policy.until is None or container.get("Created", 0) <= policy.until)):
                    plan.containers.append(container)
        gone = {c["Id"] for c in plan.containers}
        self.users = {}  # image id -> containers that stay and use it
        for container in self.containers:
            if container["Id"] not in gone:
                self.users.setdefault(container.get("ImageID"), []).append(container)
        for image in self.images.values():
            tags = _tags(image)
            is_head = not self.children.get(image["Id"])
            wanted = is_head and ((policy.dangling and not tags and not _digests(image))
                                  or (policy.unused and tags))
            if wanted and not policy.chooses(image):
                plan.filtered += 1
            elif wanted:
                reason = self.protected(image)
                if reason:
                    plan.spared.append((image, reason))
                else:
                    plan.images.append(image)
        if policy.keep_last is not None:
            self._old_tags(plan)
        plan.simulate()
        return plan

    def protected(self, image):
        """Why this image must stay, or None."""
        labels = image.get("Labels") or {}
        if self.policy.keep_label in labels:
            return "it has the keep label %s" % self.policy.keep_label
        if image["Id"] in self.named_ids:
            return "a workflow names it as an output (%s)" % self.named_ids[image["Id"]]
        for tag in _tags(image):
            if refs.normalize(tag) in self.named:
                return "a workflow names it as an output (%s)" % tag
        users = self.users.get(image["Id"], [])
        running = [c for c in users if c.get("State") == "running"]
        if running:
            return "running container %s uses it" % _container_name(running[0])
        if users:
            return "stopped container %s uses it (not one of this project's runs)" % _container_name(users[0])
        return None

    def _old_tags(self, plan):
        repositories = {refs.parse(ref).name for ref in self.named if refs.parse(ref)}
        by_repository = {}
        for image in self.images.values():
            for tag in _tags(image):
                parsed = refs.parse(tag)
                if parsed and parsed.name in repositories:
                    by_repository.setdefault(parsed.name, []).append((image, tag))
        for tagged in by_repository.values():
            tagged.sort(key=lambda pair: (-pair[0].get("Created", 0), pair[1]))
            for image, tag in tagged[int(self.policy.keep_last):]:
                if refs.normalize(tag) in self.named or not self.policy.chooses(image):
                    continue
                reason = self.protected(image)
                if reason:
                    plan.spared.append((image, reason))
                elif image not in plan.images:
                    plan.tags.append((image, tag))

    # --- layers and bytes -----------------------------------------------------
    def chains(self, image_id):
        """The chain ids of an image's layers, bottom first (as the engine names layers)."""
        from .. import imagetar  # here, not at the top: loading the workflows never reads layers

        inspected = self.docker.inspect_image(image_id) or {}
        return imagetar.chain_ids((inspected.get("RootFS") or {}).get("Layers") or [])

    def layer_bytes(self, freed, image_ids):
        """(bytes, exact) of the layers in `freed`, from the images' sizes: a layer's
        size is the size of the image ending at it minus that of the one below."""
        top_size = {}
        chains = {image_id: self.chains(image_id) for image_id in image_ids}
        for image_id, chain in chains.items():
            if chain:
                top_size[chain[-1]] = self.images[image_id]["Size"]
        total, exact, counted = 0, True, set()
        for chain in chains.values():
            below, group = 0, []
            for layer in chain:
                group.append(layer)
                if layer not in top_size:
                    continue
                in_freed = [item for item in group if item in freed and item not in counted]
                if in_freed and len(in_freed) == len(group):
                    total += top_size[layer] - below
                elif in_freed:
                    exact = False  # sizes of single layers inside this group are unknown
                counted.update(in_freed)
                below, group = top_size[layer], []
        return total, exact


class Plan:
    """What a prune removes, and what that frees."""

    def __init__(self, survey):
        self.survey = survey
        self.images = []        # image summaries removed by id (untagged or all tags go)
        self.tags = []          # (image, tag) names removed by keep_last
        self.containers = []    # our stopped containers
        self.spared = []        # (image, reason) the policy chose but a protection keeps
        self.filtered = 0       # images of the kind chosen that the filters (older_than, labels) leave
        self.deleted_ids = set()
        self.freed_layers = set()

    def simulate(self):
        """Which images the engine will delete (the chosen ones, tags that were their
        last name, and the untagged parents left with no child), and the layers freed."""
        survey = self.survey
        deleted = {image["Id"] for image in self.images}
        untagged = {}
        for image, tag in self.tags:
            untagged.setdefault(image["Id"], set()).add(tag)
        for image_id, tags in untagged.items():
            if tags == set(_tags(survey.images[image_id])) and not survey.users.get(image_id):
                deleted.add(image_id)
        frontier = list(deleted)
        while frontier:
            parent_id = survey.images.get(frontier.pop(), {}).get("ParentId")
            parent = survey.images.get(parent_id)
            if (parent and parent_id not in deleted and not _tags(parent) and not survey.users.get(parent_id)
                    and all(child in deleted for child in survey.children.get(parent_id, []))):
                deleted.add(parent_id)
                frontier.append(parent_id)
        kept_layers = set()
        for image_id in survey.images:
            if image_id not in deleted:
                kept_layers.update(survey.chains(image_id))
        freed = set()
        for image_id in deleted:
            freed.update(survey.chains(image_id))
        self.deleted_ids = deleted
        self.freed_layers = freed - kept_layers

    def report(self, dry_run, freed_layers=None, deleted_ids=None, container_bytes=None, cache_bytes=None):
        survey = self.survey
        deleted_ids = self.deleted_ids if deleted_ids is None else deleted_ids
        freed_layers = self.freed_layers if freed_layers is None else freed_layers
        image_bytes, exact = survey.layer_bytes(freed_layers, list(survey.images))
        if container_bytes is None:
            container_bytes = sum(c.get("SizeRw") or 0 for c in self._sized_containers())
        if cache_bytes is None:
            cache_bytes = _reclaimable_cache(survey.docker) if survey.policy.build_cache else 0
        return {
            "images": [{"id": image["Id"], "tags": _tags(image), "size": image["Size"]} for image in self.images],
            "tags": [tag for _image, tag in self.tags],
            "intermediate": sorted(set(deleted_ids) - {image["Id"] for image in self.images}
                                   - {image["Id"] for image, _tag in self.tags}),
            "containers": [{"id": c["Id"], "name": _container_name(c)} for c in self.containers],
            "spared": [{"id": image["Id"], "tags": _tags(image), "reason": reason} for image, reason in self.spared],
            "filtered": self.filtered,
            "image_bytes": image_bytes,
            "container_bytes": container_bytes,
            "build_cache_bytes": cache_bytes,
            "bytes": image_bytes + container_bytes + cache_bytes,
            "exact": exact,
        }

    def _sized_containers(self):
        if not self.containers:
            return []
        wanted = {c["Id"] for c in self.containers}
        listed = self.survey.docker.api.containers(
            all=True, size=True, filters={"label": "%s=%s" % (PROJECT_LABEL, self.survey.project_dir)})
        return [c for c in listed if c["Id"] in wanted]


def _carry_out(step, docker, survey, plan):
    """Remove what the plan says; count what the engine says it deleted."""
    import docker as sdk

    api = docker.api
    container_bytes = sum(c.get("SizeRw") or 0 for c in plan._sized_containers())
    removed_containers = []
    for container in plan.containers:
        try:
            api.remove_container(container["Id"])
            removed_containers.append(container)
        except sdk.errors.NotFound:
            pass
        except sdk.errors.APIError as err:
            ui.warn(step.name, "container %s not removed: %s" % (_container_name(container), err.explanation))
    # A tagged image goes tag by tag (rmi by id refuses an image with several names).
    work = [(tag, image, False) for image, tag in plan.tags]
    for image in plan.images:
        work += [(tag, image, True) for tag in _tags(image)] or [(image["Id"], image, True)]
    deleted, failed, done_tags = set(), set(), []
    for target, image, whole in work:
        try:
            answer = api.remove_image(target, force=False, noprune=False) or []
        except sdk.errors.ImageNotFound:
            continue  # gone already
        except sdk.errors.APIError as err:
            ui.warn(step.name, "%s not removed: %s" % (_short(target), err.explanation))
            failed.add(image["Id"])
            continue
        deleted.update(item["Deleted"] for item in answer if item.get("Deleted"))
        if not whole:
            done_tags.append((image, target))
        docker.forget(target)
    cache_bytes = 0
    if survey.policy.build_cache:
        filters = {"until": survey.policy.older_than} if survey.policy.older_than else None
        cache_bytes = (api.prune_builds(filters=filters) or {}).get("SpaceReclaimed") or 0
    plan.images = [image for image in plan.images if image["Id"] not in failed]
    plan.tags = done_tags
    plan.containers = removed_containers
    all_layers = {layer for image_id in survey.images for layer in survey.chains(image_id)}
    return plan.report(dry_run=False, freed_layers=deleted & all_layers,
                       deleted_ids=deleted & set(survey.images),
                       container_bytes=container_bytes if removed_containers else 0, cache_bytes=cache_bytes)


def _reclaimable_cache(docker):
    usage = docker.api.df()
    return sum(entry.get("Size") or 0 for entry in usage.get("BuildCache") or [] if not entry.get("InUse"))


def _tell(step, docker, report, dry_run):
    verb = "would remove" if dry_run else "removed"
    for image in report["images"]:
        ui.say(step.name, "%s image %s %s" % (verb, _short(image["id"]), " ".join(image["tags"]) or "<none>"))
    if report["intermediate"]:
        ui.say(step.name, "%s %d intermediate image(s) under them" % (verb, len(report["intermediate"])))
    for tag in report["tags"]:
        ui.say(step.name, "%s tag %s" % (verb, tag))
    for container in report["containers"]:
        ui.say(step.name, "%s stopped container %s" % (verb, container["name"]))
    for image in report["spared"]:
        ui.say(step.name, "kept %s %s: %s" % (_short(image["id"]), " ".join(image["tags"]) or "<none>",
                                             image["reason"]))
    if report["filtered"]:
        ui.say(step.name, "left alone: %d image(s) of that kind the filters do not choose (%s)"
               % (report["filtered"], _filters(step)))
    approx = "" if report["exact"] else " at least"
    ui.say(step.name, "%s: %s%s %s (%d bytes: images %d, containers %d, build cache %d)"
           % ("dry run, nothing removed" if dry_run else "done",
              "would free" if dry_run else "reclaimed", approx, _human(report["bytes"]), report["bytes"],
              report["image_bytes"], report["container_bytes"], report["build_cache_bytes"]))
    ui.record(dict(report, event="dockflow.prune", step=step.name, engine=docker.host, dry_run=dry_run,
                   time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


def _filters(step):
    shown = []
    for field in ("older_than", "labels", "not_labels"):
        value = step.get(field) if step.spec.get(field) else None
        if value:
            shown.append("%s: %s" % (field, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return "; ".join(shown)


def _tags(image):
    return [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]


def _digests(image):
    return [digest for digest in image.get("RepoDigests") or [] if digest != "<none>@<none>"]


def _container_name(container):
    names = container.get("Names") or []
    return names[0].lstrip("/") if names else container["Id"][:12]


def _short(ref):
    return ref[7:19] if ref.startswith("sha256:") else ref


def _human(count):
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (count, unit)
        count /= 1000.0
