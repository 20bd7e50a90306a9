"""Image references: `basic-app`, `lab/basic-app:1.0.0` and
`docker.io/library/basic-app:latest` name the same image; compare them normalised."""
import re

DEFAULT_REGISTRY = "docker.io"
_REF_RE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<repo>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class ImageRef:
    """A parsed image reference. `str()` gives the canonical long form."""

    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry, repository, tag, digest):
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    def __str__(self):
        name = "%s/%s" % (self.registry, self.repository)
        if self.digest:
            return name + "@" + self.digest
        return "%s:%s" % (name, self.tag)

    @property
    def name(self):
        """Repository as the engine shows it (no docker.io/library prefix)."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix("library/")
        return "%s/%s" % (self.registry, self.repository)


def is_valid(text):
    return parse(text) is not None


def parse(text):
    """ImageRef, or None when `text` is not an image reference."""
    match = _REF_RE.match(text or "")
    if not match:
        return None
    registry = match.group("registry")
    repository = match.group("repo")
    first = text.split("/", 1)[0]
    # A first component is a registry only if it looks like a host (as docker decides).
    if registry and not ("." in first or ":" in first or first == "localhost"):
        if first != first.lower():
            return None  # upper case is allowed in a registry host only
        repository = "%s/%s" % (registry, repository)
        registry = None
    registry = registry or DEFAULT_REGISTRY
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY  # Docker Hub's other names
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = "library/" + repository
    tag = match.group("tag") or ("" if match.group("digest") else "latest")
    return ImageRef(registry, repository, tag, match.group("digest"))


def normalize(text):
    """Canonical form used to match one step's output with another's input."""
    ref = parse(text)
    return str(ref) if ref else text


def split_tag(text):
    """(`repository as the engine names it`, `tag`) for the SDK's tag/push calls."""
    ref = parse(text)
    return ref.name, ref.tag
