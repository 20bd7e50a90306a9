"""prune: give back the disk that rebuilds fill (Exercise 3.01's dangling images).

What it removes, as the step says:
  dangling: true (default)  untagged images nothing builds on, and the untagged
                            intermediate images under them (`docker image prune`)
  unused: true              also tagged images no container uses (`prune -a`)
  keep_last: N              per repository the workflows build, all tags but the
                            newest N (by image creation time); never a version tag
  keep_versions: N          per repository the workflows build, all version tags
                            (1.0.0, v2.1.0-rc.1) but the N highest, by version
  containers: true          stopped containers of this project's own runs
                            (label io.dockflow.project=<project folder>)
  build_cache: true         the engine's build cache (engine-wide)
Filters narrow every image choice: older_than ("72h", "7d"), labels (all must
match, "key" or "key=value") and not_labels (none may match). `dangling` and
`unused` look at the whole engine, as `docker image prune` does, unless
`scope: project` keeps them to this project's lineage: the images the workflows
name (outputs and base images) and every image built on one of them.

Every field of the policy can also be given on doit's command line for one run,
checked against the schema as the YAML is: `doit prune dry_run=true older_than=0s`.

What it never removes, whatever the policy says: an image that any workflow in
workflows/ names as an output, an image a running container uses, an image with
the keep label (io.dockflow.keep, or the step's keep_label), and a version tag,
unless keep_versions says so. An image a stopped container uses is left too (the
engine refuses), unless that container is one of ours being removed.

dry_run: true, or `doit prune dry_run=true`, lists what would go and the bytes it
would free, and removes nothing. Bytes are layer sizes as the engine reports them:
a layer counts when no image that stays uses it (the engine's own rule for
SpaceReclaimed). A real run counts the layers the engine says it deleted, reports
on the terminal and as one JSON line (`"event": "dockflow.prune"`). A part that
fails (the build cache, say) is named in that record beside what the other parts
removed, and the step then fails.

A prune is never up to date, and holds the project's lock exclusively (tasks/lock.py)
so it never runs beside a build or push of the same project.
"""
import re
import time

from .. import engine, refs, ui
from ..errors import EngineUnreachable, StepFailed
from ..labels import KEEP_LABEL, PROJECT_LABEL
from ..variables import SEMVER_RE
from . import Verdict

ALWAYS_RUN = True
# The policy's fields, each also a `name=value` of doit's command line for one run.
POLICY_FIELDS = ("dangling", "unused", "older_than", "labels", "not_labels", "keep_last", "keep_versions",
                 "containers", "build_cache", "keep_label", "scope", "dry_run")
COMMAND_LINE_SWITCHES = POLICY_FIELDS  # `doit prune dry_run=true older_than=0s`
AGE_RE = re.compile(r"^([0-9]+)([smhdw])$")
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
STOPPED = ("created", "exited", "dead")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def outputs(step):
    return []


def inputs(step):
    return []


def problems(step):
    found = _command_line_problems(step)
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
    return bool(setting(step, "dry_run", False))


# --- the policy, from the step and doit's command line ------------------------
def setting(step, field, default=None):
    """A policy field: `field=value` of doit's command line, else the step's own."""
    given = step.workflow.variables.override(field)
    if given is not None:
        return _from_command_line(field, str(given))
    return step.get(field, default)


def _field_schema(field):
    import json

    from ..workflow import _read_schema

    return json.loads(_read_schema())["$defs"]["prune"]["properties"][field]


def _from_command_line(field, text):
    """The command line's text as the YAML value it stands for: the schema's type says
    which (true/false, a number, a comma-separated list); a misfit is left as text
    for the schema check to refuse."""
    kind = _field_schema(field).get("type")
    word = text.strip().lower()
    if kind == "boolean" and word in TRUE_WORDS + FALSE_WORDS:
        return word in TRUE_WORDS
    if kind == "integer" and re.fullmatch(r"-?[0-9]+", word):
        return int(word)
    if kind == "array":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _command_line_problems(step):
    """A definition problem for each policy `name=value` of the command line that the
    schema would refuse in the YAML."""
    from ..workflow import validator_class

    found = []
    for field in POLICY_FIELDS:
        given = step.workflow.variables.override(field)
        if given is None:
            continue
        schema = _field_schema(field)
        for error in validator_class()(schema).iter_errors(_from_command_line(field, str(given))):
            found.append("%s: command line %s=%s: %s (%s)" % (step.where(), field, given, error.message,
                                                              schema["description"]))
    return found


def run(step, verdict):
    daemon = engine.for_step(step)
    dry_run = is_dry_run(step)
    survey = Survey(step, daemon)
    selection = survey.decide()
    report = selection.report(dry_run=True) if dry_run else _carry_out(step, daemon, survey, selection)
    _tell(step, daemon, report, dry_run)
    if report["failures"]:
        raise StepFailed("%s: prune on %s: %s (what the other parts removed is in the record above)"
                         % (step.name, daemon.host, "; ".join(report["failures"])))
    return {"dry_run": dry_run, "bytes": report["bytes"], "removed": len(report["images"])
            + len(report["tags"]) + len(report["containers"])}


def age_seconds(text):
    """Seconds of an age like 72h or 7d; None when it is not one."""
    match = AGE_RE.match(str(text))
    return int(match.group(1)) * AGE_UNITS[match.group(2)] if match else None


class Policy:
    def __init__(self, step):
        self.dangling = bool(setting(step, "dangling", True))
        self.unused = bool(setting(step, "unused", False))
        self.keep_last = setting(step, "keep_last")
        self.keep_versions = setting(step, "keep_versions")
        self.containers = bool(setting(step, "containers", False))
        self.build_cache = bool(setting(step, "build_cache", False))
        self.keep_label = setting(step, "keep_label", KEEP_LABEL)
        self.project_scope = setting(step, "scope", "engine") == "project"
        self.labels = [_label_pair(text) for text in setting(step, "labels", [])]
        self.not_labels = [_label_pair(text) for text in setting(step, "not_labels", [])]
        self.older_than = setting(step, "older_than")
        self.age = None if self.older_than is None else age_seconds(self.older_than)
        if self.older_than is not None and self.age is None:
            raise StepFailed("%s: %r is not an age like 72h or 7d" % (step.where("older_than"), self.older_than))
        self.until = None if self.age is None else time.time() - self.age

    def passes(self, image):
        """None when the filters let this image be removed, else why not, as
        (singular, plural) verb phrases: ("is younger than 24h", "are younger than 24h")."""
        labels = image.get("Labels") or {}
        if self.until is not None and image.get("Created", 0) > self.until:
            return ("is younger than %s" % self.older_than, "are younger than %s" % self.older_than)
        missing = [pair for pair in self.labels if not _has_label(labels, pair)]
        if missing:
            return ("lacks the label %s" % _shown_label(missing[0]), "lack the label %s" % _shown_label(missing[0]))
        carried = [pair for pair in self.not_labels if _has_label(labels, pair)]
        if carried:
            return ("has the label %s" % _shown_label(carried[0]), "have the label %s" % _shown_label(carried[0]))
        return None


def _label_pair(text):
    key, sep, value = str(text).partition("=")
    return key, value if sep else None


def _shown_label(pair):
    key, value = pair
    return key if value is None else "%s=%s" % (key, value)


def _has_label(labels, pair):
    key, value = pair
    return key in labels and (value is None or labels[key] == value)


def version_of(tag):
    """The version a tag's tag part spells (1.0.0, v2.1.0-rc.1), or None."""
    text = tag.rsplit(":", 1)[1] if ":" in tag.rsplit("/", 1)[-1] else ""
    text = text[1:] if text[:1] in ("v", "V") else text
    return text if SEMVER_RE.match(text) else None


def version_order(version):
    """A sort key in semantic-version precedence: numbers as numbers, a pre-release
    below its release, numeric pre-release parts below alphanumeric ones; build
    metadata (+...) does not count."""
    core, _, pre = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(part) for part in core.split("."))
    if not pre:
        return numbers, 1, ()
    return numbers, 0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))


class Survey:
    """One look at the engine: images, containers, and what the workflows name."""

    def __init__(self, step, daemon):
        self.step = step
        self.daemon = daemon
        self.policy = Policy(step)
        self.project_dir = step.workflow.project.dir
        what = "%s: prune on %s: list the" % (step.name, daemon.host)
        self.images = {image["Id"]: image for image in daemon.images(what + " images", all=True)}
        self.containers = daemon.containers(what + " containers", all=True)
        self.children = {}
        for image in self.images.values():
            if image.get("ParentId"):
                self.children.setdefault(image["ParentId"], []).append(image["Id"])
        self.named, self.read = self._named_images(step.workflow.project.steps)
        self.named_ids = {}
        for ref in self.named:
            image_id = daemon.image_id(ref)
            if image_id:
                self.named_ids.setdefault(image_id, ref)
        self._lineage_roots = None

    def _named_images(self, all_steps):
        """(every image ref any workflow step makes, every one a step reads), normalised;
        unresolvable outputs refuse a tag prune (we could not tell what a workflow
        still needs)."""
        from . import module_for

        named, read, unknown = set(), set(), []
        for other in all_steps.values():
            module = module_for(other.kind)
            try:
                made = module.outputs(other)
                read.update(refs.normalize(value) for kind, value in module.inputs(other) if kind == "image")
            except StepFailed as err:
                unknown.append("%s (%s)" % (other.name, err))
                continue
            named.update(refs.normalize(value) for kind, value in made if kind == "image")
        if unknown and (self.policy.unused or self.policy.keep_last is not None
                        or self.policy.keep_versions is not None or self.policy.project_scope):
            raise StepFailed("%s: cannot tell which images %s make(s) or read(s); prune removes no tagged "
                             "image, and no scope: project image, while a workflow's images are unknown"
                             % (self.step.name, ", ".join(unknown)))
        return named, read

    # --- decisions ----------------------------------------------------------
    def decide(self):
        policy = self.policy
        selection = Selection(self)
        if policy.containers:
            for container in self.containers:
                labels = container.get("Labels") or {}
                if container.get("State") in STOPPED and labels.get(PROJECT_LABEL) == self.project_dir:
                    if policy.until is None or container.get("Created", 0) <= policy.until:
                        selection.containers.append(container)
                    else:
                        selection.stay("stopped container", ("is younger than %s" % policy.older_than,
                                                        "are younger than %s" % policy.older_than))
        gone = {c["Id"] for c in selection.containers}
        self.users = {}  # image id -> containers that stay and use it
        for container in self.containers:
            if container["Id"] not in gone:
                self.users.setdefault(container.get("ImageID"), []).append(container)
        for image in self.images.values():
            kind = self._whole_image_kind(image)
            if kind:
                self._choose(selection, image, kind)
        if policy.keep_last is not None:  # newest first by creation time; never a version tag
            self._old_tags(selection, "old tag", lambda tag: version_of(tag) is None, policy.keep_last,
                           lambda tagged: sorted(tagged, key=lambda pair: (-pair[0].get("Created", 0), pair[1])))
        if policy.keep_versions is not None:  # highest version first
            self._old_tags(selection, "old version tag", version_of, policy.keep_versions,
                           lambda tagged: sorted(tagged, key=lambda pair: version_order(version_of(pair[1])),
                                                 reverse=True))
        selection.simulate()
        return selection

    def _whole_image_kind(self, image):
        """"dangling image" or "unused tagged image" when the policy wants this whole
        image gone (before filters and protections), else None."""
        if self.children.get(image["Id"]):
            return None  # something builds on it; the engine takes it with its last child
        tags = _tags(image)
        if self.policy.dangling and not tags and not _digests(image):
            return "dangling image"
        if self.policy.unused and tags:
            return "unused tagged image"
        return None

    def _choose(self, selection, image, kind):
        why_not = self.policy.passes(image) or self._out_of_scope(image)
        if why_not:
            selection.stay(kind, why_not)
            return
        reason = self.protected(image) or (self._version_tagged(image) if kind == "unused tagged image" else None)
        if reason:
            selection.spared.append((image, reason))
        else:
            selection.images.append(image)

    def _version_tagged(self, image):
        versions = [tag for tag in _tags(image) if version_of(tag)]
        if versions:
            return "it has the version tag %s (only keep_versions removes version tags)" % versions[0]
        return None

    def _out_of_scope(self, image):
        if not self.policy.project_scope or self.in_lineage(image["Id"]):
            return None
        return ("is not of this project's lineage (scope: project)", "are not of this project's lineage "
                "(scope: project)")

    def in_lineage(self, image_id):
        """Is this image one the workflows name (made or read), or built on one of them
        (its layers begin with all of that image's layers)?"""
        if self._lineage_roots is None:
            root_ids = {self.daemon.image_id(ref) for ref in self.named | self.read}
            self._lineage_roots = [tuple(self.chains(i)) for i in root_ids if i and i in self.images]
            self._lineage_roots = [chain for chain in self._lineage_roots if chain]
        chain = tuple(self.chains(image_id))
        return any(chain[:len(root)] == root for root in self._lineage_roots)

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
        for tag in _tags(image):
            if refs.normalize(tag) in self.read:  # gone, the next build fails (offline: for good)
                return "a workflow builds on it (%s: a FROM or cache_from)" % tag
        users = self.users.get(image["Id"], [])
        running = [c for c in users if c.get("State") == "running"]
        if running:
            return "running container %s uses it" % _container_name(running[0])
        if users:
            return "stopped container %s uses it (not one of this project's runs)" % _container_name(users[0])
        return None

    def _old_tags(self, selection, what, counts, keep, newest_first):
        """Per repository the workflows build, the tags `counts` picks, put newest first
        by `newest_first`: all but the first `keep` go (keep_last, keep_versions)."""
        repositories = {refs.parse(ref).name for ref in self.named if refs.parse(ref)}
        by_repository = {}
        for image in self.images.values():
            for tag in _tags(image):
                parsed = refs.parse(tag)
                if parsed and parsed.name in repositories and counts(tag):
                    by_repository.setdefault(parsed.name, []).append((image, tag))
        for tagged in by_repository.values():
            for image, tag in newest_first(tagged)[int(keep):]:
                if refs.normalize(tag) in self.named:
                    continue
                why_not = self.policy.passes(image)
                if why_not:
                    selection.stay(what, why_not)
                    continue
                reason = self.protected(image)
                if reason:
                    selection.spared.append((image, reason))
                elif image not in selection.images:
                    selection.tags.append((image, tag))

    # --- layers and bytes -----------------------------------------------------
    def chains(self, image_id):
        """The chain ids of an image's layers, bottom first (as the engine names layers)."""
        from .. import imagetar  # here, not at the top: loading the workflows never reads layers

        inspected = self.daemon.inspect_image(image_id) or {}
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


class Selection:
    """What a prune removes, and what that frees."""

    def __init__(self, survey):
        self.survey = survey
        self.images = []        # image summaries removed by id (untagged or all tags go)
        self.tags = []          # (image, tag) names removed by keep_last / keep_versions
        self.containers = []    # our stopped containers
        self.spared = []        # (image, reason) the policy chose but a protection keeps
        self.staying = {}       # (what, (singular, plural) why) -> how many the filters leave
        self.failures = []      # parts of a real run that failed, in words
        self.deleted_ids = set()
        self.freed_layers = set()

    def stay(self, what, why):
        """Count one thing of the kind chosen that the filters (or the scope) leave."""
        self.staying[(what, why)] = self.staying.get((what, why), 0) + 1

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
            container_bytes = sum(c.get("SizeRw") or 0 for c in self.sized_containers())
        if cache_bytes is None:
            cache_bytes = _reclaimable_cache(survey.daemon) if survey.policy.build_cache else 0
        staying = [{"what": what, "why": why[1], "count": count, "text": _stays_sentence(what, why, count)}
                   for (what, why), count in self.staying.items()]
        return {
            "images": [{"id": image["Id"], "tags": _tags(image), "size": image["Size"]} for image in self.images],
            "tags": [tag for _image, tag in self.tags],
            "intermediate": sorted(set(deleted_ids) - {image["Id"] for image in self.images}
                                   - {image["Id"] for image, _tag in self.tags}),
            "containers": [{"id": c["Id"], "name": _container_name(c)} for c in self.containers],
            "spared": [{"id": image["Id"], "tags": _tags(image), "reason": reason} for image, reason in self.spared],
            "filtered": sum(item["count"] for item in staying),
            "staying": staying,
            "engine_wide": [] if survey.policy.project_scope else
            [kind for kind, on in (("dangling", survey.policy.dangling), ("unused", survey.policy.unused)) if on],
            # each image's size counted whole, shared layers again for every image (as
            # `doit layers` and `docker images` add them up); image_bytes counts a layer once
            "listed_bytes": sum(image["Size"] for image in self.images),
            "image_bytes": image_bytes,
            "container_bytes": container_bytes,
            "build_cache_bytes": cache_bytes,
            "bytes": image_bytes + container_bytes + cache_bytes,
            "exact": exact,
            "failures": list(self.failures),
        }

    def sized_containers(self):
        """The chosen stopped containers as the engine lists them with their sizes (SizeRw)."""
        if not self.containers:
            return []
        wanted = {c["Id"] for c in self.containers}
        listed = self.survey.daemon.containers(
            "sizes of the stopped containers", all=True, size=True,
            filters={"label": "%s=%s" % (PROJECT_LABEL, self.survey.project_dir)})
        return [c for c in listed if c["Id"] in wanted]


def _stays_sentence(what, why, count):
    """`14 dangling images are younger than 24h and stay`."""
    singular, plural = why
    if count == 1:
        return "1 %s %s and stays" % (what, singular)
    return "%d %ss %s and stay" % (count, what, plural)


def _carry_out(step, daemon, survey, selection):
    """Remove what the selection says, part by part; count what the engine says it deleted.
    A part that fails is named in selection.failures and the others still run and count."""
    container_bytes = _attempt(selection, daemon, "sizes of the stopped containers",
                               lambda: sum(c.get("SizeRw") or 0 for c in selection.sized_containers()), 0)
    selection.containers = _attempt(selection, daemon, "stopped containers",
                                    lambda: _remove_containers(step, daemon, selection), [])
    deleted = set()
    _attempt(selection, daemon, "images", lambda: _remove_images(step, daemon, selection, deleted))
    cache_bytes = 0
    if survey.policy.build_cache:
        cache_bytes = _attempt(selection, daemon, "build cache",
                               lambda: _prune_build_cache(daemon, survey.policy), 0)
    all_layers = {layer for image_id in survey.images for layer in survey.chains(image_id)}
    return selection.report(dry_run=False, freed_layers=deleted & all_layers,
                            deleted_ids=deleted & set(survey.images),
                            container_bytes=container_bytes if selection.containers else 0, cache_bytes=cache_bytes)


def _attempt(selection, daemon, part, work, failed_value=None):
    """work()'s value; on an engine error, the part is named in selection.failures."""
    try:
        return work()
    except StepFailed as err:
        selection.failures.append("%s: %s" % (part, _engine_words(err)))
        return failed_value


def _remove_containers(step, daemon, selection):
    removed = []
    for container in selection.containers:
        try:
            if daemon.remove_container("remove container", container["Id"], force=False):
                removed.append(container)
        except EngineUnreachable:
            raise
        except StepFailed as err:
            ui.warn(step.name, "container %s not removed: %s" % (_container_name(container), _engine_words(err)))
    return removed


def _engine_words(err):
    """The engine's reason in a StepFailed of a verb ("what: reason")."""
    return str(err).split(": ", 1)[-1].strip()


def _remove_images(step, daemon, selection, deleted):
    """Remove the selection's images and tags; `deleted` gathers the ids and layers the
    engine says it deleted, and the selection keeps only what went (also when this fails
    half way)."""
    # A tagged image goes tag by tag (rmi by id refuses an image with several names).
    work = [(tag, image, False) for image, tag in selection.tags]
    for image in selection.images:
        work += [(tag, image, True) for tag in _tags(image)] or [(image["Id"], image, True)]
    failed, done_tags, done_images = set(), [], set()
    try:
        for target, image, whole in work:
            try:
                answer = daemon.remove_image("remove image", target) or []  # None: gone already
            except EngineUnreachable:
                raise
            except StepFailed as err:
                ui.warn(step.name, "%s not removed: %s" % (_short(target), _engine_words(err)))
                failed.add(image["Id"])
                continue
            deleted.update(item["Deleted"] for item in answer if item.get("Deleted"))
            if whole:
                done_images.add(image["Id"])
            elif answer:
                done_tags.append((image, target))
    finally:  # what was not reached, when the engine fails half way, is not reported as removed
        selection.images = [image for image in selection.images if image["Id"] in done_images - failed]
        selection.tags = done_tags


def _prune_build_cache(daemon, policy):
    """Bytes the engine freed. Its `until` filter takes a Go duration only (72h, not 3d)."""
    filters = {"until": "%ds" % policy.age} if policy.age is not None else None
    return daemon.prune_build_cache("prune the build cache", filters)


def _reclaimable_cache(daemon):
    usage = daemon.disk_usage("disk usage")
    return sum(entry.get("Size") or 0 for entry in usage.get("BuildCache") or [] if not entry.get("InUse"))


def _tell(step, daemon, report, dry_run):
    from ..progress import human_size  # run only: a no-op imports every step module

    verb = "would remove" if dry_run else "removed"
    if dry_run and report["engine_wide"]:
        ui.say(step.name, "%s images are chosen engine-wide, not only this project's (as `docker image prune`); "
               "scope: project keeps to the images the workflows name and those built on them"
               % " and ".join(report["engine_wide"]))
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
    for item in report["staying"]:
        ui.say(step.name, item["text"])
    if report["images"] and report["listed_bytes"] > report["image_bytes"]:
        count = len(report["images"])
        ui.say(step.name, "the %s chosen add%s up to %s as `doit layers` and `docker images` count them (each "
               "image with all its layers); layers are shared, with each other and with images that stay, so "
               "counted once and without what stays they %s %s"
               % ("1 image" if count == 1 else "%d images" % count, "s" if count == 1 else "",
                  human_size(report["listed_bytes"]), "would free" if dry_run else "freed",
                  human_size(report["image_bytes"])))
    for failure in report["failures"]:
        ui.warn(step.name, "failed: %s" % failure)
    approx = "" if report["exact"] else " at least"
    ui.say(step.name, "%s: %s%s %s (%d bytes: images %d, containers %d, build cache %d)"
           % ("dry run, nothing removed" if dry_run else "done",
              "would free" if dry_run else "reclaimed", approx, human_size(report["bytes"]), report["bytes"],
              report["image_bytes"], report["container_bytes"], report["build_cache_bytes"]))
    ui.record(dict(report, event="dockflow.prune", step=step.name, engine=daemon.host, dry_run=dry_run,
                   time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


def _tags(image):
    return [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]


def _digests(image):
    return [digest for digest in image.get("RepoDigests") or [] if digest != "<none>@<none>"]


def _container_name(container):
    names = container.get("Names") or []
    return names[0].lstrip("/") if names else container["Id"][:12]


def _short(ref):
    return ref[7:19] if ref.startswith("sha256:") else ref
