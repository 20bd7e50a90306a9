"""Read workflow files into Steps, or say everything that is wrong with them at once.

A file is parsed with YAML's safe loader, keeping the line and column of every
value, then checked against schemas/workflow.schema.json. Both are slow to import
(about 110 ms together), so the checked document is cached under .dockflow/cache:
an unchanged file costs one read. The cache is never a second source of truth: an
entry is named by a keyed hash (BLAKE2b, the key a secret of this user's, see
files.user_secret) of the file and the schema, and sealed the same way, so no one
without the secret can make an entry we take (one shipped in a repository, say),
and one older than its file is parsed again.
"""
import hashlib
import json
import os

from . import doit_internals, files, variables
from .errors import WorkflowError

# Inside the package, so an installed dockflow finds it; in the repository it is a
# symlink to schemas/workflow.schema.json, the one source (a wheel holds a copy).
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workflow.schema.json")
CACHE_FORMAT = b"dockflow-cache-3"  # bump when what is cached changes
# doit's own commands hide a task of the same name (`doit list` never runs a step).
DOIT_COMMANDS = doit_internals.command_names()


class Workflow:
    """One workflow file: its steps, variables and the position of every value."""

    def __init__(self, path, document, marks, override=None, broken_steps=()):
        self.path = path
        # Steps the schema refused, left out of `steps`: a `needs:` naming one is no unknown step.
        self.broken_steps = frozenset(broken_steps)
        self.display_path = _shown(os.path.relpath(path))
        self.base_dir = os.path.dirname(path)
        self.marks = marks
        self.project = None  # the Project that loaded it (project.py); None for a file read alone
        self.variables = variables.Variables(document.get("vars"), self.base_dir, override,
                                             where=lambda name: self.where("vars", str(name)))
        self.steps = {name: Step(name, spec, self) for name, spec in document["steps"].items()}

    def where(self, *path):
        """`file:line:col` of the value at `path` (or of its closest parent)."""
        path = list(path)
        while path and "\x1f".join(path) not in self.marks:
            path.pop()
        line, column = self.marks.get("\x1f".join(path), (1, 1))
        return "%s:%d:%d" % (self.display_path, line, column)


class Step:
    """One step of a workflow; fields are read with variables expanded."""

    def __init__(self, name, spec, workflow):
        self.name = name
        self.spec = spec
        self.workflow = workflow
        self.kind = spec["kind"]
        self.doc = spec.get("doc", "")

    def get(self, field, default=None):
        if field not in self.spec:
            return default
        return self.workflow.variables.expand(self.spec[field])

    def path(self, field, default=None):
        """A path field, absolute, relative to the workflow file's folder."""
        value = self.get(field, default)
        if value is None:
            return None
        return os.path.normpath(os.path.join(self.workflow.base_dir, value))

    def where(self, *field):
        """`file:line:col: steps.NAME.FIELD` for messages about this step."""
        path = ("steps", self.name) + tuple(str(f) for f in field)
        return "%s: %s" % (self.workflow.where(*path), ".".join(path))

    def definition(self):
        """The step as written, minus its doc: a digest input (a doc edit rebuilds nothing)."""
        return {k: v for k, v in self.spec.items() if k != "doc"}

    def expanded_definition(self):
        return self.workflow.variables.expand(self.definition())


def load_file(path, cache_dir, override=None, collect=None):
    """A checked Workflow, or WorkflowError listing every problem in the file.
    With a `collect` list, problems that leave the file's structure sound (an
    undefined variable, a reserved step name) are appended to it instead, and the
    Workflow is returned, so that later checks can report theirs in the same run."""
    with open(path, "rb") as handle:
        raw = handle.read()
        written = os.fstat(handle.fileno()).st_mtime_ns
    schema_raw = _read_schema()
    secret = files.user_secret()
    cache_path = cached = None
    if secret:
        key = hashlib.blake2b(CACHE_FORMAT + schema_raw + raw, key=secret, digest_size=32).hexdigest()
        # One entry per workflow file: `lab.yaml-<key>.json`; a new one replaces the old.
        cache_prefix = os.path.basename(path) + "-"
        cache_path = os.path.join(cache_dir, cache_prefix + key + ".json")
        cached = _read_entry(cache_path, secret, written)
    broken_steps = ()  # a file with any problem is never cached
    if cached is None:
        document, marks, problems, broken_steps = _parse_and_check(path, raw, schema_raw)
        cached = {"document": document, "marks": marks}
        if problems and collect is None:
            raise WorkflowError(problems)
        if problems:
            collect.extend(problems)
        elif cache_path:
            _write_entry(cache_path, secret, cached)
            _drop_older_entries(cache_dir, cache_prefix, cache_path)
    marks = {k: tuple(v) for k, v in cached["marks"].items()}
    return Workflow(os.path.abspath(path), cached["document"], marks, override, broken_steps)


def _seal(secret, cache_path, body):
    """The keyed hash an entry carries on its first line: of its name and its JSON."""
    named = os.path.basename(cache_path).encode() + b"\0" + body
    return hashlib.blake2b(named, key=secret, digest_size=32).hexdigest().encode()


def _read_entry(cache_path, secret, yaml_written):
    """The cached {"document", "marks"}, or None: no entry, a damaged one, one not sealed
    with our secret, or one older than the workflow file."""
    from hmac import compare_digest

    try:
        with open(cache_path, "rb") as handle:
            if os.fstat(handle.fileno()).st_mtime_ns < yaml_written:
                return None
            seal, _, body = handle.read().partition(b"\n")
        if not compare_digest(seal, _seal(secret, cache_path, body)):
            return None
        cached = json.loads(body)
    except (OSError, ValueError):
        return None
    return cached if isinstance(cached, dict) and {"document", "marks"} <= set(cached) else None


def _write_entry(cache_path, secret, cached):
    body = json.dumps(cached).encode()
    try:
        files.write_atomic(cache_path, _seal(secret, cache_path, body) + b"\n" + body)
    except OSError:
        pass  # a read-only project folder: parsed again next time


def _drop_older_entries(cache_dir, prefix, keep):
    for name in os.listdir(cache_dir):
        if name.startswith(prefix) and os.path.join(cache_dir, name) != keep:
            try:
                os.unlink(os.path.join(cache_dir, name))
            except OSError:
                pass  # another run removed it first


_schema_bytes = None


def _read_schema():
    global _schema_bytes
    if _schema_bytes is None:
        with open(SCHEMA_PATH, "rb") as handle:
            _schema_bytes = handle.read()
    return _schema_bytes


def _parse_and_check(path, raw, schema_raw):
    display = _shown(os.path.relpath(path))
    document, marks = parse_yaml(display, raw)
    problems, broken_steps = schema_problems(display, document, marks, json.loads(schema_raw))
    problems = sorted(problems + static_problems(display, document, marks), key=lambda p: _line_and_column(display, p))
    if broken_steps is None:  # the file's own shape is wrong: none of its steps can be read
        raise WorkflowError(problems)
    # A step the schema refuses is left out, so that the other steps still reach the later checks.
    steps = {name: spec for name, spec in document["steps"].items() if name not in broken_steps}
    return dict(document, steps=steps), marks, problems, sorted(broken_steps)


def parse_yaml(display, raw):
    """(document, marks): marks maps a joined path to the (line, column) of its value."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _line_and_column_at(raw, err.start, b"\n")
        raise WorkflowError("%s:%d:%d: not UTF-8 text (byte %d)" % (display, line, column, err.start)) from None
    try:
        _check_shape(display, text, loader_class)
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise WorkflowError("%s:1:1: the file is empty; a workflow needs `steps:`" % display)
            marks, problems = {}, []
            _walk_marks(node, (), marks, problems, display)
            if problems:
                raise WorkflowError(problems)
            document = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = str(err.problem or err)
        if "maximum nesting depth" in problem:  # libyaml 0.2.5+ (PyYAML 6.0.4's wheels) stops at 1000 first
            problem = "more than %d levels of nesting" % MAX_DEPTH
        raise WorkflowError("%s:%d:%d: YAML: %s" % (display, line, column, _shown(problem))) from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (a NUL, say)
        line, column = _line_and_column_at(text, err.position, "\n")
        raise WorkflowError("%s:%d:%d: YAML: %s" % (display, line, column, _shown(err.reason))) from None
    except yaml.YAMLError as err:
        raise WorkflowError("%s:1:1: YAML: %s" % (display, _shown(str(err)))) from None
    return document, marks


def _line_and_column_at(text, offset, newline):
    """(line, column), from 1, of position `offset` in `text` (str or bytes)."""
    line_start = text.rfind(newline, 0, offset) + 1
    return text.count(newline, 0, offset) + 1, offset - line_start + 1


# A workflow nests a handful of levels. libyaml builds its nodes by recursing in C and
# crashes the interpreter somewhere below 100,000 levels, so depth is counted first,
# on the event stream, which it reads without recursing.
MAX_DEPTH = 50
# Aliases may repeat this many values in all. Each level of `x: &x [*w, *w, ...]` multiplies
# the values to walk and check: nine levels, 500 bytes, took 100 s and 3.6 GB.
MAX_ALIAS_VALUES = 10000


def _check_shape(display, text, loader_class):
    """WorkflowError for nesting deeper than MAX_DEPTH, an alias inside the value it
    names, or aliases repeating more than MAX_ALIAS_VALUES values."""
    import yaml

    open_collections = []  # [anchor, values in it so far], outermost first
    size_of = {}           # anchor -> how many values it stands for
    repeated = 0
    for event in yaml.parse(text, Loader=loader_class):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_collections) == MAX_DEPTH:
                _refuse(display, event, "more than %d levels of nesting" % MAX_DEPTH)
            open_collections.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_collections.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, count = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            if any(open_anchor == event.anchor for open_anchor, _ in open_collections):
                _refuse(display, event, "the alias *%s stands inside the value it names" % event.anchor)
            anchor, count = None, size_of.get(event.anchor, 0)  # an undefined one: the composer says so
            repeated += count
            if repeated > MAX_ALIAS_VALUES:
                _refuse(display, event, "aliases here repeat more than %d values in all (at *%s): "
                        "write the values out" % (MAX_ALIAS_VALUES, event.anchor))
        else:
            continue
        if anchor is not None:
            size_of[anchor] = count
        if open_collections:
            open_collections[-1][1] += count


def _refuse(display, event, message):
    mark = event.start_mark
    raise WorkflowError("%s:%d:%d: YAML: %s" % (display, mark.line + 1, mark.column + 1, _shown(message)))


_TEXT_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_WHAT_YAML_READS = {"tag:yaml.org,2002:int": "a number", "tag:yaml.org,2002:float": "a number",
                    "tag:yaml.org,2002:bool": "true or false", "tag:yaml.org,2002:null": "null (no value)",
                    "tag:yaml.org,2002:timestamp": "a date"}


def _walk_marks(node, path, marks, problems, display, mark=None):
    """A mapping's entry is marked where its key is written (`14:5: steps.app.context`
    points at `context:`), a list item where the item is. Every key must be text: a step
    named `yes` or an arg `2001-01-01` is a boolean or a date to YAML."""
    import yaml

    mark = mark or node.start_mark
    marks["\x1f".join(path)] = (mark.line + 1, mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *defaults`: its entries keep the marks of the mapping
            where = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _TEXT_TAG):
                problems.append(_problem(display, where, list(path), _not_text(key_node)))
                continue
            key = key_node.value
            if key in seen:
                problems.append(_problem(display, where, list(path), "duplicate key %r" % key))
            seen.add(key)
            _walk_marks(value_node, path + (key,), marks, problems, display, key_node.start_mark)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_marks(item, path + (str(index),), marks, problems, display)


def _not_text(key_node):
    import yaml

    if not isinstance(key_node, yaml.ScalarNode):
        return "a list or a mapping cannot be a key"
    what = _WHAT_YAML_READS.get(key_node.tag, "the type %s" % key_node.tag)
    return "YAML reads the key %s as %s, not text: quote it (%s)" % (
        key_node.value or "~", what, json.dumps(key_node.value or "~"))


def schema_problems(display, document, marks, schema):
    validator = validator_class()(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    # A step of no known kind, or none: its one problem is its kind. Which of its fields
    # are unknown or required cannot be said before the kind is right.
    kind_errors = [e for e in errors if _is_kind_error(e) or _is_missing_kind(e)]
    steps_without_kind = {_step_of(e) for e in kind_errors}
    problems, broken_steps = [], set()
    for error in errors:
        path = [str(p) for p in error.absolute_path]
        if "propertyNames" in error.absolute_schema_path:
            path.append(str(error.instance))  # a bad name: marked where it is written
        if broken_steps is not None:
            broken_steps = broken_steps | {path[1]} if len(path) >= 2 and path[0] == "steps" else None
        if _step_of(error) in steps_without_kind and error not in kind_errors:
            continue
        if _is_kind_error(error):
            kinds = error.validator_value
            problems.append(_format(display, marks, path, "%r is not a step kind%s; the kinds: %s" % (
                error.instance, did_you_mean(str(error.instance), kinds), ", ".join(kinds))))
            continue
        if error.validator in ("unevaluatedProperties", "additionalProperties") \
                and isinstance(error.instance, dict):
            # One line per unknown field, at that field. A failing `then` (a wrong
            # type elsewhere in the step) makes jsonschema call every field of the
            # kind unevaluated: report only the fields no part of the schema knows.
            known = _known_fields(validator, schema, error.schema, error.instance)
            for field in sorted(set(error.instance) - known):
                problems.append(_format(display, marks, path + [str(field)], "unknown field"
                                        + did_you_mean(str(field), known)))
            continue
        problems.append(_format(display, marks, path, _schema_message(error)))
    # _parse_and_check puts them in the file's order, with the static ones. broken_steps:
    # the steps with a problem, or None when one is outside every step.
    return problems, broken_steps


def _step_of(error):
    return tuple(map(str, error.absolute_path))[:2]


def _is_missing_kind(error):
    path = list(error.absolute_path)
    return (error.validator == "required" and len(path) == 2 and path[0] == "steps"
            and isinstance(error.instance, dict) and "kind" not in error.instance and "'kind'" in error.message)


def _is_kind_error(error):
    path = list(error.absolute_path)
    return error.validator == "enum" and len(path) == 3 and path[0] == "steps" and path[2] == "kind"


def _line_and_column(display, problem):
    """(line, column) of a problem `_problem` wrote for file `display`: problems in the file's order."""
    line, column = problem[len(display) + 1:].split(": ", 1)[0].split(":")
    return int(line), int(column)


def validator_class():
    """Draft 2020-12, except that a `pattern` does not judge a string holding ${variables}:
    its value is only known once expanded, and the step kind checks it then. And a
    pattern's final `$` is the end of the text, as in the ECMA regexps JSON Schema
    speaks (editors check the file so): Python's `$` also matches before a final
    newline, which let a step named "prune\\n" through."""
    import jsonschema

    draft = jsonschema.Draft202012Validator
    check_pattern = draft.VALIDATORS["pattern"]

    def pattern_unless_variable(validator, pattern, instance, schema):
        if isinstance(instance, str) and variables.names_in(instance):
            return
        if not pattern.endswith("$") or pattern.endswith("\\$"):
            yield from check_pattern(validator, pattern, instance, schema)
            return
        for error in check_pattern(validator, pattern[:-1] + "\\Z", instance, schema):
            error.message = error.message.replace(repr(pattern[:-1] + "\\Z"), repr(pattern))  # as written
            yield error

    return jsonschema.validators.extend(draft, {"pattern": pattern_unless_variable})


def _known_fields(validator, root, subschema, instance):
    """Field names `subschema` declares for `instance`, following allOf/if/then and
    local $refs (the shape of schemas/workflow.schema.json)."""
    known = set(subschema.get("properties", {}))
    if "$ref" in subschema and subschema["$ref"].startswith("#/$defs/"):
        known |= _known_fields(validator, root, root["$defs"][subschema["$ref"][8:]], instance)
    for part in subschema.get("allOf", []):
        if "if" in part:
            if validator.evolve(schema=part["if"]).is_valid(instance):
                known |= _known_fields(validator, root, part.get("then", {}), instance)
        else:
            known |= _known_fields(validator, root, part, instance)
    return known


def did_you_mean(name, known):
    """` (did you mean 'image'?)` for a near miss among `known` names, else ""."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return " (did you mean %r?)" % close[0] if close else ""


def _schema_message(error):
    if error.validator in ("anyOf", "oneOf") and error.context:
        error = min(error.context, key=lambda e: len(list(e.absolute_path)))
    return _with_short_value(error)


def _with_short_value(error):
    """jsonschema's message, the value it quotes cut short: a long value said in full
    made 39 MB of text."""
    import reprlib

    quoted = repr(error.instance)
    if len(quoted) <= MESSAGE_CHARS // 2:
        return error.message
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    short.maxlist = short.maxdict = short.maxtuple = 4
    short.maxlevel = 2
    return error.message.replace(quoted, short.repr(error.instance))


def _format(display, marks, path, message):
    probe = list(path)
    while probe and "\x1f".join(probe) not in marks:
        probe.pop()
    return _problem(display, marks.get("\x1f".join(probe), (1, 1)), path, message)


MESSAGE_CHARS = 300  # of a problem's path, and of its message


def _problem(display, where, path, message):
    """`file:line:col: path: message` on one line, each part cut to MESSAGE_CHARS."""
    return "%s:%d:%d: %s: %s" % (display, where[0], where[1],
                                 _shown(".".join(map(_key_shown, path)) or "(top)"), _shown(message))


def _key_shown(key):
    """A key as a path shows it; quoted when blank or spaced at an end, so that it is seen."""
    return key if key and key.strip() == key else repr(key)


def _shown(text):
    """`text` printable on one line and at most MESSAGE_CHARS long: a key or a value
    written by someone else may hold a newline or a terminal escape."""
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + "... (%d characters)" % len(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def static_problems(display, document, marks):
    """Checks that need only the file: reserved names, declared variables.
    Run beside the schema check, so they must bear any shape of document."""
    problems = []
    if not isinstance(document, dict):
        return problems
    declared_vars = document.get("vars") if isinstance(document.get("vars"), dict) else {}
    steps = document.get("steps") if isinstance(document.get("steps"), dict) else {}
    for name, spec in steps.items():
        here = ["steps", str(name)]
        if name in DOIT_COMMANDS:
            problems.append(_format(display, marks, here, "step name %r is a doit command; "
                                    "`doit %s` would not run it: rename the step" % (name, name)))
        for field, value in (spec.items() if isinstance(spec, dict) else ()):
            for var in variables.names_in_value(value):
                if var not in declared_vars:
                    problems.append(_format(display, marks, here + [str(field)],
                                            "undefined variable ${%s} (declare it under vars:)" % var))
    for name, source in declared_vars.items():
        if isinstance(source, str) and variables.names_in(source):
            problems.append(_format(display, marks, ["vars", str(name)], "a variable cannot use other variables"))
    return problems


def load_all(workflow_dir, cache_dir, override=None, collect=None):
    """Every *.yaml / *.yml under `workflow_dir` (not in sub-folders), checked together.
    `collect`: as for load_file; files whose structure is broken still raise."""
    try:
        names = sorted(n for n in os.listdir(workflow_dir) if n.endswith((".yaml", ".yml")))
    except FileNotFoundError:
        raise WorkflowError("%s: no such folder; put workflow files in workflows/" % workflow_dir) from None
    workflows, problems = [], []
    for name in names:
        try:
            workflows.append(load_file(os.path.join(workflow_dir, name), cache_dir, override, collect))
        except WorkflowError as err:
            problems.extend(err.problems)
    if problems:
        raise WorkflowError(problems + (collect or []))
    return workflows
