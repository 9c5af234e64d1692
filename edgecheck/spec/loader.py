"""Read a spec file: safe YAML with line numbers, duplicate keys refused, errors naming file:line:field.

The YAML is composed into nodes (never constructed into arbitrary objects), walked once into plain
data while recording the line of every field, then validated by the schema. Every failure becomes
a `SpecError`; nothing else escapes for any input text. Size, nesting depth and the number of values
are bounded before they can cost memory or time, and only regular files are read. `parse_yaml` is
also the reader of every other YAML data file a user names (device profiles, operator tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from edgecheck.errors import SpecError
from edgecheck.spec.schema import SPEC_VERSION, SpecContext, cross_field_problems, spec_models
from edgecheck.spec.words import Says, describe_mistake, says_of

if TYPE_CHECKING:
    from edgecheck.spec.schema import Spec
from edgecheck.userfile import UnreadableFile, read_bounded

Loc = tuple[Any, ...]
MAX_NODES = 100_000  # aliases can make a tiny file expand exponentially ("billion laughs")
MAX_BYTES = 1_000_000
MAX_DEPTH = 64  # a spec needs under 10 levels; deeper text would exhaust the parser's recursion


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing collections nested deeper than MAX_DEPTH as it composes them."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent):
            if self.depth >= MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        return super().compose_node(parent, index)


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus where each field came from, so later stages can point at a line too."""

    spec: Spec
    path: Path
    lines: dict[Loc, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known field along `loc` (the field itself, else its parent)."""
        for end in range(len(loc), -1, -1):
            if (line := self.lines.get(tuple(loc[:end]))) is not None:
                return line
        return None

    def error(self, loc: Loc, message: str) -> SpecError:
        return SpecError(self.path, message, line=self.line_of(loc), field=format_loc(loc) or None)


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _PlainData:
    """Turns composed YAML nodes into dicts, lists and scalars, recording each value's line."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: dict[Loc, int] = {}
        self.count = 0
        self.scalars = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, loc: Loc, active: frozenset[int] = frozenset()) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise SpecError(self.path, f"document expands to more than {MAX_NODES} values (alias bomb?)")
        if id(node) in active:
            raise SpecError(self.path, "recursive alias", line=node.start_mark.line + 1, field=format_loc(loc) or None)
        if len(loc) > MAX_DEPTH:  # aliases can nest what the text does not
            raise SpecError(self.path, f"nested deeper than {MAX_DEPTH} levels", line=node.start_mark.line + 1)
        self.lines.setdefault(loc, node.start_mark.line + 1)
        inner = active | {id(node)}
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc, inner)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*loc, index), inner) for index, item in enumerate(node.value)]
        return self.scalars.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc, active: frozenset[int]) -> dict[Any, Any]:
        self.scalars.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(self.path, "mapping keys must be plain scalars", line=line, field=format_loc(loc) or None)
            key = self.scalars.construct_object(key_node)
            if key in result:
                raise SpecError(self.path, f"duplicate key {key!r}", line=line, field=format_loc((*loc, key)))
            self.lines[(*loc, key)] = line
            result[key] = self.convert(value_node, (*loc, key), active)
        return result


def parse_yaml(text: str, path: Path) -> tuple[Any, dict[Loc, int]]:
    """Safe-load one YAML document into plain data and a map of field → line."""
    try:
        node = yaml.compose(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError(path, f"not valid YAML: {problem}", line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, f"not valid YAML: {exc}") from None
    except RecursionError:  # not reached within MAX_DEPTH; kept so that no text can escape as a crash
        raise SpecError(path, "the document is nested too deeply") from None
    if node is None:
        raise SpecError(path, "the file is empty")
    converter = _PlainData(path)
    try:
        data = converter.convert(node, ())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError(path, f"not valid YAML: {exc}", line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise SpecError(path, "the document is nested too deeply") from None
    return data, converter.lines


def _read_text(path: Path, what: str, max_bytes: int) -> str:
    """A user's text file: a regular file of at most `max_bytes`, UTF-8; else a SpecError naming it."""
    try:
        raw = read_bounded(path, max_bytes, what)
    except UnreadableFile as exc:
        raise SpecError(path, exc.reason) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})", line=line) from None


def read_yaml_file(path: Path, what: str, max_bytes: int = MAX_BYTES) -> tuple[Any, dict[Loc, int]]:
    """A user's YAML data file as plain data and field lines: a regular file of at most `max_bytes`,
    UTF-8, nested at most MAX_DEPTH deep, with no duplicate keys; else a SpecError naming the file."""
    return parse_yaml(_read_text(path, what, max_bytes), path)


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # edgecheck's own data files live under it


def safe_loader() -> type[yaml.SafeLoader]:
    """The safe loader on libyaml's parser where PyYAML has it (about 20x faster), else the Python one: the
    same data for the same text, without line tracking or the duplicate-key refusal."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_data_file(path: Path, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """A YAML data file as plain data. edgecheck's own (its device profiles, operator tables: tests read each
    with `read_yaml_file` too and require the same data) is parsed by libyaml; a user's by `read_yaml_file`,
    which bounds nesting, refuses duplicate keys and names the line of a mistake."""
    text = _read_text(path, what, max_bytes)
    if not Path(path).resolve().is_relative_to(PACKAGE_DIR):
        return parse_yaml(text, path)[0]
    try:
        return yaml.load(text, Loader=safe_loader())
    except yaml.YAMLError:  # never for a file of ours; said with the line all the same
        return parse_yaml(text, path)[0]


def load_spec(path: Path | str, project_root: Path | str | None = None) -> LoadedSpec:
    """Load and validate a spec file. Paths in it resolve against its folder and must stay in `project_root`."""
    path = Path(path)
    text = _read_text(path, "spec", MAX_BYTES)
    root = Path(project_root) if project_root is not None else path.parent
    return load_spec_text(text, path, root)


def load_spec_text(text: str, path: Path, project_root: Path) -> LoadedSpec:
    """Validate spec text as if it were the file `path` (used by tests and by `load_spec`)."""
    try:
        data, lines = parse_yaml(text, path)
    except RecursionError:
        raise SpecError(path, "the document is nested too deeply") from None
    if data is None:
        raise SpecError(path, "the file is empty")
    if not isinstance(data, dict):
        raise SpecError(path, f"the top level must be a mapping of spec fields, not {type(data).__name__}", line=1)
    version = data.get("edgecheck")
    if "edgecheck" in data and (type(version) is not int or version != SPEC_VERSION):
        raise SpecError(path, f"unsupported spec version {version!r}; this edgecheck reads version {SPEC_VERSION}",
                        line=lines.get(("edgecheck",)), field="edgecheck")
    context = SpecContext(base_dir=path.parent.absolute(), project_root=Path(project_root).absolute())
    try:
        spec = spec_models().Spec.model_validate(data, context=context)
    except ValidationError as exc:
        raise _first_error(exc, path, data, lines) from None
    except RecursionError:
        raise SpecError(path, "the document is nested too deeply") from None
    loaded = LoadedSpec(spec=spec, path=path, lines=lines)
    for loc, message in cross_field_problems(spec):
        raise loaded.error(loc, message)
    return loaded


def _first_error(exc: ValidationError, path: Path, data: Any, lines: dict[Loc, int]) -> SpecError:
    errors = exc.errors(include_url=False)
    error = errors[0]
    loc = _document_loc(error["loc"], data)
    message = _describe(error, loc)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    loaded = LoadedSpec(spec=None, path=path, lines=lines)  # type: ignore[arg-type]
    return loaded.error(loc, message)


def _document_loc(loc: Loc, data: Any) -> Loc:
    """The part of pydantic's error location that exists in the document.

    pydantic inserts names of its own (union members, validators such as 'function-after[...]',
    '[key]'); walking the data keeps exactly the keys and indexes the user wrote, whatever they contain.
    """
    kept: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            kept.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
        elif index == len(loc) - 1 and isinstance(node, dict) and part not in node and isinstance(part, str) \
                and not any(c in part for c in "[("):
            kept.append(part)  # a missing required field: name it
    return tuple(kept)


def _describe(error: dict[str, Any], loc: Loc) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and loc:
        known = _known_fields(loc[:-1])
        text = f"unknown key {loc[-1]!r}" + (f" (known: {', '.join(known)})" if known else "")
        if "budgets" in loc or "recipes" in loc:  # a budget of a check kind whose plugin did not load?
            from edgecheck.spec.kinds import broken_checks

            broken = broken_checks()
            if broken:
                text += "; check plugins that failed to load: " + "; ".join(f"{k}: {v}" for k, v in broken.items())
        return text
    if kind == "missing":
        return "required field is missing"
    says = _says_at(loc)
    if says is not None and (words := describe_mistake(says, error)) is not None:
        return words
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _says_at(loc: Loc) -> Says | None:
    """How the spec describes the value of the field at `loc` (`edgecheck.spec.words`), if it does."""
    if not loc:
        return None
    parent = _unwrap(_annotation_at(loc[:-1]))
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        info = parent.model_fields.get(str(loc[-1]))
        return says_of(info.annotation, info.metadata) if info is not None else None
    if get_origin(parent) is dict:
        return says_of(get_args(parent)[1])
    return None


def _known_fields(loc: Loc) -> list[str]:
    """Field names allowed at `loc`, found by walking the schema, so a typo gets the right list."""
    current = _unwrap(_annotation_at(loc))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _annotation_at(loc: Loc) -> Any:
    """The annotation of the value at `loc`, found by walking the spec's models (None where it leaves them)."""
    current: Any = spec_models().Spec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return None
    return current


def _unwrap(annotation: Any) -> Any:
    """Strip Optional[...] and Annotated[...] down to the model, dict or list inside."""
    for _ in range(5):
        args = [a for a in get_args(annotation) if a is not type(None)]
        origin = get_origin(annotation)
        if origin in (dict, list) or not args:
            return annotation
        annotation = args[0]
    return annotation
