"""Operator tables: what a backend (on a device) accepts, as versioned data files with their source.

A table lists ONNX operators by type ("Conv"; another domain's as "com.microsoft.QLinearConv") with
a status, the operator versions it covers, and the constraints its source states (data types,
attribute ranges, ranks, inputs that must be constant). What a table does not list gets its
`unlisted` status, with the table's reason: a table never guesses silently. Built-in tables live
in `tables/`; a project adds or replaces one with a folder of its own (`--edge-ops-dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from edgecheck.devices import read_named_mapping
from edgecheck.errors import DeviceError
from edgecheck.formats import known_formats
from edgecheck.strict import StrictModel

Status = Literal["supported", "fallback", "unsupported"]
# What a node that breaks a stated constraint becomes: still counted as 'constraint' (supported
# but outside what the source promises), or the consequence the source names.
Consequence = Literal["constraint", "fallback", "unsupported"]


class Constraint(StrictModel):
    """One condition the source states for an operator, checked on the node and its inferred types and shapes.

    kinds:
      dtype           the element type of input `input` (default 0) is one of `values` (numpy names:
                      float32, float16, int8, uint8, int32, int64, bool, ...)
      attribute       every value of attribute `attribute` (an int, float or list of them; the ONNX default
                      when absent, if `default` is given) is within [min, max], or one of `values`
      rank            the rank of input `input` is within [min, max]
      dim             dimension `axis` of input `input` is within [min, max]
      constant_input  input `input` is an initializer or a Constant's output (not computed at run time)
      static_shape    every dimension of every input and output is known when the model's inputs are fixed
    """

    kind: Literal["dtype", "attribute", "rank", "dim", "constant_input", "static_shape"]
    input: int | None = Field(None, ge=0)
    attribute: str | None = None
    axis: int | None = None
    min: float | None = None
    max: float | None = None
    values: list[int | float | str] | None = None
    default: int | float | str | list[int | float] | None = None
    then: Consequence = "constraint"
    text: str = Field("", description="The rule in the source's words, shown when a node breaks it.")

    @model_validator(mode="after")
    def _complete(self) -> Constraint:
        if self.kind == "attribute" and not self.attribute:
            raise ValueError("an attribute constraint names its attribute")
        if self.kind == "dim" and self.axis is None:
            raise ValueError("a dim constraint names its axis")
        if self.kind in ("attribute", "rank", "dim") and self.min is None and self.max is None and not self.values:
            raise ValueError(f"a {self.kind} constraint gives min, max or values")
        if self.kind == "dtype" and not self.values:
            raise ValueError("a dtype constraint lists the allowed types in values")
        return self


class OpRule(StrictModel):
    status: Status = "supported"
    # Operator versions (ONNX since_version of the op's schema) covered, as inclusive [first, last]
    # ranges; last null means "and later". Absent: every version.
    versions: list[tuple[int, int | None]] | None = None
    constraints: list[Constraint] = Field(default_factory=list)
    note: str = Field("", description="Why this status (for fallback/unsupported), in the source's words.")


class Unlisted(StrictModel):
    status: Status
    reason: str


class OpTable(StrictModel):
    """One backend's (and device's) operator support, as its source states it."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    backend: str
    format: str = Field("onnx", description="The artifact format whose operators it keys, by name (an installed "
                        "format: ONNX op types, or e.g. TFLite builtin names and custom:<code>).")
    devices: list[str] = Field(default_factory=list, description="Devices it speaks for; empty: any.")

    version: str = Field(description="The version of the source this table reflects.")
    source: str = Field(description="Where the rules come from: document, release, section.")
    url: str | None = None
    unlisted: Unlisted
    notes: dict[str, str] = Field(default_factory=dict, description="Per constraint kind, what breaking one means "
                                  "on this backend, added to every such breach's reason.")
    ops: dict[str, OpRule]
    base: str | None = Field(None, description="A table (by name) whose operators, and notes, this one starts from; "
                             "its own `ops` add to them or replace them (a provider judged by another runtime's rules).")
    falls_back_to: list[str] = Field(default_factory=list, description="Tables (by name) of what runs, in order, a "
                                     "node this one does not support: such a node is `fallback` where one of them "
                                     "supports it (ONNX Runtime's next provider), and keeps its verdict otherwise.")
    judges: list[Literal["unsupported", "fallback", "constraint"]] = Field(
        default_factory=lambda: ["unsupported", "fallback", "constraint"], description="The classes this table can "
        "tell apart; a budget on another is inconclusive, with the table's reason in `notes` under `judges`.")
    file: Path | None = Field(None, exclude=True)
    fallbacks: list["OpTable"] = Field(default_factory=list, exclude=True)  # `falls_back_to`, resolved on loading

    @field_validator("format")
    @classmethod
    def _installed_format(cls, value: str) -> str:
        if value not in known_formats():
            raise ValueError(f"no artifact format named {value!r} is installed (installed: {', '.join(known_formats())})")
        return value

    def rule(self, key: str) -> OpRule | None:
        return self.ops.get(key)

    def cite(self) -> str:
        """Short, for each node's reason: the table and the version of its source."""
        return f"{self.name} table, {self.version}"

    def citation(self) -> str:
        """In full, once per report: what the rules are, where they come from."""
        return f"{self.title}: {self.source}, {self.version}" + (f" <{self.url}>" if self.url else "")


def op_key(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}.{op_type}"


def read_table(path: Path) -> OpTable:
    """One table file, validated; a DeviceError naming the file, the field and the cause otherwise."""
    data = read_named_mapping(path, "operator table")
    if "fallbacks" in data:
        raise DeviceError(f"{path}: fallbacks: not a field of a table file (name the tables in falls_back_to)")
    try:
        return OpTable.model_validate({**data, "file": path})
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "the table"
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        message = "required field is missing" if first["type"] == "missing" else first["msg"]
        raise DeviceError(f"{path}: {where}: {message}{more}") from None


def builtin_table_dirs() -> list[Path]:
    """The folders of operator tables the installed vendors ship (entry point group `edgecheck.tables`)."""
    from edgecheck.entrypoints import TABLES, folders

    found, broken = folders(TABLES)
    for name, why in broken.items():
        raise DeviceError(f"operator tables {name!r}: {why}")
    return found


def table_files(folder: Path | str) -> list[Path] | str:
    """A folder's table files, in the order `load_tables` reads them, or why it has none to read ("not found",
    "is not a folder"): the one walk both loading and fingerprinting go by, so they cannot drift apart."""
    folder = Path(folder)
    if not folder.is_dir():
        return "is not a folder" if folder.exists() else "not found"
    return sorted(folder.glob("*.y*ml"))


def load_tables(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> dict[str, OpTable]:
    """The built-in tables, then each project folder's; a later file with the same name replaces one. A table that
    names a `base` or tables it `falls_back_to` gets them resolved here (a project's replacement of one counts)."""
    tables: dict[str, OpTable] = {}
    for folder in (*builtin_table_dirs(), *extra_dirs):
        files = table_files(folder)
        if isinstance(files, str):
            raise DeviceError(f"{folder}: operator table folder {files}")
        for path in files:
            table = read_table(path)
            tables[table.name] = table
    return {name: _resolved(table, tables) for name, table in tables.items()}


def _resolved(table: OpTable, tables: dict[str, OpTable], seen: tuple[str, ...] = ()) -> OpTable:
    """The table with its base's operators under its own and the tables it falls back to attached, each resolved
    too; a DeviceError naming the file where a name is unknown, of another format, or a loop."""
    if not table.base and not table.falls_back_to:
        return table
    where = table.file or table.name
    if table.name in seen:
        raise DeviceError(f"{where}: base/falls_back_to loop through {' -> '.join((*seen, table.name))}")

    def named(name: str, field: str) -> OpTable:
        found = tables.get(name)
        if found is None:
            raise DeviceError(f"{where}: {field}: no operator table named {name!r} (known: {', '.join(sorted(tables))})")
        if found.format != table.format:
            raise DeviceError(f"{where}: {field}: table {name!r} reads {found.format} models, this one {table.format}")
        return _resolved(found, tables, (*seen, table.name))

    update: dict[str, object] = {"fallbacks": [named(name, "falls_back_to") for name in table.falls_back_to]}
    if table.base:
        base = named(table.base, "base")
        update["ops"] = {**base.ops, **table.ops}
        update["notes"] = {**base.notes, **table.notes}
    return table.model_copy(update=update)


def tables_fingerprint(extra_dirs: list[Path] | tuple[Path, ...] = ()) -> str:
    """SHA-256 of what `load_tables` would read (each folder's table files, by name and bytes, or that the
    folder is missing) and of the installed formats a table is validated against."""
    import hashlib

    digest = hashlib.sha256(repr(sorted(known_formats())).encode())
    try:
        folders = builtin_table_dirs()
    except DeviceError as exc:
        folders, digest = [], hashlib.sha256(f"{digest.hexdigest()} {exc}".encode())
    for folder in (*folders, *extra_dirs):
        digest.update(f"\0folder {Path(folder).resolve()}\0".encode())
        files = table_files(folder)
        if isinstance(files, str):
            digest.update(b"absent" if files == "not found" else b"not a folder")
            continue
        for path in files:
            digest.update(f"\0{path.name}\0".encode())
            try:
                digest.update(path.read_bytes())
            except OSError as exc:
                digest.update(f"unreadable {exc}".encode())
    return digest.hexdigest()


class _Flow(dict):
    """An operator's rule, written on one line."""


def dump_table(table: OpTable, header: str) -> str:
    """A generated table as YAML (one line per operator) under a header comment saying how it was made."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Flow, lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data.items(), flow_style=True))
    data = table.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    data["ops"] = {key: _Flow(rule) for key, rule in data["ops"].items()}
    return header + yaml.dump(data, Dumper=Dumper, sort_keys=False, width=160)


def merge_ranges(ranges: list[tuple[int, int]], open_end: int) -> list[tuple[int, int | None]]:
    """Version ranges joined where they touch or overlap; an end at or past `open_end` is open (None)."""
    merged: list[list[int]] = []
    for start, end in sorted(set(ranges)):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, None if b >= open_end else b) for a, b in merged]
