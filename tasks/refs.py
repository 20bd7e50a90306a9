"""Image references: `basic-app`, `lab/basic-app:1.0.0` and
`docker.io/library/basic-app:latest` name the same image; compare them normalised.

The grammar is distribution/reference's (regexp.go and normalize.go, what Docker
parses references with), spelt out in the same pieces. Go's `\\w` is ASCII and its
`$` is the end of the text, so the classes are written out and the match is whole
(`fullmatch`): `x:1\\n` is no reference.
"""
import re

DEFAULT_REGISTRY = "docker.io"
MAX_PATH_LENGTH = 255  # reference.RepositoryNameTotalLengthMax

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"  # one period, one or two underscores, any number of dashes
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|\[[a-fA-F0-9:]+\])"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REF_RE = re.compile(r"(?:(?P<registry>" + _DOMAIN_AND_PORT + r")/)?(?P<repo>" + _REMOTE_NAME + r")"
                     r"(?::(?P<tag>" + _TAG + r"))?(?:@(?P<digest>" + _DIGEST + r"))?")
# go-digest then accepts only the algorithms it knows, each with its own length, in lower case.
_KNOWN_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")


class ImageRef:
    """A parsed image reference. `str()` gives the canonical long form."""

    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry, repository, tag, digest):
        self.registry = registry  # "" for the rare name Docker gives no domain (`a_b.c/x`)
        self.repository = repository
        self.tag = tag
        self.digest = digest

    def __str__(self):
        if self.digest:
            return self.name_with_registry + "@" + self.digest
        return "%s:%s" % (self.name_with_registry, self.tag)

    @property
    def name_with_registry(self):
        return "%s/%s" % (self.registry, self.repository) if self.registry else self.repository

    @property
    def name(self):
        """Repository as the engine shows it (no docker.io/library prefix)."""
        if self.registry == DEFAULT_REGISTRY:
            return self.repository.removeprefix("library/")
        return self.name_with_registry


def is_valid(text):
    return parse(text) is not None


def may_be_image_id(text):
    """True for what the engine may take for an image id or a prefix of one (`3f57d9401f8d`):
    it looks such a name up as a tag first, then as an id, so only it can answer."""
    return isinstance(text, str) and _IMAGE_ID_RE.fullmatch(text) is not None


def parse(text):
    """ImageRef, or None when `text` is not an image reference (Docker's
    ParseNormalizedNamed: which first component is a registry, then the grammar)."""
    if not isinstance(text, str) or re.fullmatch(r"[a-f0-9]{64}", text):
        return None  # a full image id, never a name
    registry, remainder = _split_docker_domain(text)
    match = _REF_RE.fullmatch("%s/%s" % (registry, remainder))
    if not match or len(match.group("repo")) > MAX_PATH_LENGTH:
        return None
    digest = match.group("digest")
    if digest and not _KNOWN_DIGEST_RE.fullmatch(digest):
        return None
    registry = match.group("registry") or ""  # a first component that is no host joins the path
    if registry == "registry-1.docker.io":
        registry = DEFAULT_REGISTRY  # Docker Hub's registry under its own name
    tag = match.group("tag") or ("" if digest else "latest")
    return ImageRef(registry, match.group("repo"), tag, digest)


def _split_docker_domain(text):
    """(registry, rest) as Docker splits a name: the first component is a registry when it
    holds `.` or `:`, is `localhost`, or is not lower case; `docker.io` names one word
    `library/`."""
    first, slash, rest = text.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        registry, remainder = ("docker.io" if first == "index.docker.io" else first), rest
    else:
        registry, remainder = DEFAULT_REGISTRY, text
    if registry == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = "library/" + remainder
    return registry, remainder


def normalize(text):
    """Canonical form used to match one step's output with another's input."""
    ref = parse(text)
    return str(ref) if ref else text


def split_tag(text):
    """(`repository as the engine names it`, `tag`) for the SDK's tag/push calls."""
    ref = parse(text)
    return ref.name, ref.tag
