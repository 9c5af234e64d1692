"""The `edgecheck` command: `check` runs the spec tests through pytest (same exit codes),
`devices` lists device profiles, `recipes` the compression recipes and their parameters, `cache`
shows or clears the artifact cache, `env` lists and creates the tool environments converters with
clashing pins run in (onnx2tf, rknn), `boards` checks the lab's boards, `report` writes a run's
Markdown summary, `schema` prints the spec JSON Schema for editors; `ops`, `inspect` and `fit`
analyse a model file for a target without running it."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _check(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    from edgecheck.cli_check import OwnFlagNames, check_argv

    argv = [str(p) for p in (args.specs or ["specs"])] + check_argv(args)
    if args.junitxml:
        argv.append(f"--junitxml={args.junitxml}")
    return int(pytest.main(argv + extra, plugins=[OwnFlagNames()]))


def _recipes(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.compress import get_recipe, known_recipes
    from edgecheck.textable import format_table

    rows = [("recipe", "parameter", "default", "meaning")]
    for name in known_recipes():
        recipe = get_recipe(name)
        rows.append((name, "", "", recipe.summary))
        for field, info in recipe.params.model_fields.items():
            default = info.get_default(call_default_factory=True)
            if isinstance(default, tuple):
                shown = "[" + ", ".join(map(str, default)) + "]"
            elif default is None or isinstance(default, bool):
                shown = "-" if default is None else str(default).lower()
            else:
                shown = str(default)
            rows.append(("", field, shown, info.description or ""))
    print("\n".join(format_table(rows)))
    return 0


def _cache(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.cache import cache_summary, clear_cache, default_cache_dir
    from edgecheck.errors import EdgecheckError

    root = Path(args.cache_dir) if args.cache_dir else default_cache_dir(Path.cwd())
    if args.action == "clear":
        try:
            freed = clear_cache(root)
        except EdgecheckError as exc:
            print(f"edgecheck: {exc}", file=sys.stderr)
            return 2
        print(f"cleared {root} ({freed:,} bytes)")
        return 0
    summary = cache_summary(root)
    print(f"{root}: {summary['artifacts']} artifacts, {summary['outputs']} output sets, {summary['bytes']:,} bytes"
          + ("" if root.exists() else " (does not exist yet)"))
    return 0


def _devices(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.devices import load_profiles
    from edgecheck.errors import DeviceError

    try:
        profiles = load_profiles([Path(p) for p in args.devices_dir])
    except DeviceError as exc:
        print(f"edgecheck: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({name: p.as_data() for name, p in profiles.items()}, indent=2))
        return 0
    rows = [("device", "compute", "memory", "power", "cpu", "backends (preferred first)")]
    for name, p in sorted(profiles.items()):
        compute = f"{p.compute.tops:g} TOPS {p.compute.unit}" if p.compute.tops else p.compute.unit
        rows.append((name, compute, f"{p.memory_gb:g} GB" if p.memory_gb else "-",
                     f"{p.power_w:g} W" if p.power_w else "-",
                     f"{p.cpu.cores or '?'}x {p.cpu.arch or '?'}", ", ".join(p.backends)))
    from edgecheck.textable import format_table

    print("\n".join(format_table(rows)))
    return 0


def _env(args: argparse.Namespace, extra: list[str]) -> int:
    """`env list`, `env create NAME`, `env path NAME`: a bad definition or a failed create is exit 1."""
    from edgecheck.envs import create_env, env_definition, env_status, known_envs
    from edgecheck.errors import EnvError
    from edgecheck.textable import format_table

    try:
        if args.action == "needed":
            return _env_needed(args, extra)
        if args.action == "create":
            from edgecheck import progress

            with progress.printing(sys.stderr):  # pip's long silences (a 645 MB download) are said
                env = create_env(args.name, path=Path(args.path) if args.path else None, force=args.force,
                                 python=args.python)
            print(f"interpreter: {env.python}")
            return 0
        if args.action == "path":
            status = env_status(args.name)
            if status.env is None:
                print(f"edgecheck: {status.reason}", file=sys.stderr)
                return 1
            print(status.env.python)
            return 0
        rows = [("env", "state", "path", "size", "tool version, or what to do")]
        for name in known_envs():
            status = env_status(name)
            detail = (status.env.tool_version or "-") if status.env else status.reason
            rows.append((name, status.state, status.path, env_definition(name).size, detail))
        print("\n".join(format_table(rows)))
        return 0
    except EnvError as exc:
        print(f"edgecheck: {exc}", file=sys.stderr)
        return 1


def _env_needed(args: argparse.Namespace, extra: list[str]) -> int:
    """`env needed SPECS`: the environments a run of these specs creates first, per target (for CI). The specs
    are collected by pytest as a run collects them (the project's ini options count); a broken spec is exit 2."""
    from edgecheck.envs import env_definition
    from edgecheck.needs import run_needs

    missing = [p for p in args.specs if not Path(p).exists()]
    if missing:
        print(f"edgecheck: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    needs = run_needs(args.specs, args.target, extra)
    if needs.problems:
        for problem in needs.problems:
            print(f"edgecheck: {problem}", file=sys.stderr)
        return 2
    if not needs.targets:
        print(f"edgecheck: no spec in {', '.join(args.specs)} plans a check (for the targets asked)", file=sys.stderr)
    names = sorted({e for envs in needs.envs.values() for e in envs})
    if args.json:
        data = needs.as_data()
        data["definitions"] = {name: env_definition(name).digest() for name in names}
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(names))
    return 0


def _shapes(values: list[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for value in values:
        name, _, dims = value.rpartition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.lower().replace(",", "x").split("x"))
        except ValueError:
            raise SystemExit(f"edgecheck: --input {value!r}: write NAME=1x3x224x224") from None
        if not name:
            raise SystemExit(f"edgecheck: --input {value!r}: write NAME=1x3x224x224")
    return shapes


def _own_reader(args: argparse.Namespace):
    """(format, judge) of a model file the command reads through its format's judge (a .tflite, by its name
    or, whatever its name, by its first bytes); None for a file read as an ONNX graph."""
    if not args.model:
        return None
    from edgecheck.formats import format_of
    from edgecheck.static_checks import judge_of

    found = format_of(args.model, sniff=True)
    if found.name == "onnx":
        return None
    judge = judge_of(found)
    if not judge.command_views:
        return None
    if args.input:
        print(f"edgecheck: --input is ignored for a {found.suffix} file: {args.model} states its own shapes",
              file=sys.stderr)
    return found, judge


def _read_kinds() -> str:
    """The files the static commands read, for messages: ".onnx or .tflite" (ONNX and each installed format
    whose judge writes the command's views)."""
    from edgecheck.formats import format_named, known_formats
    from edgecheck.static_checks import judge_of

    kinds = [".onnx"]
    for name in known_formats():
        try:
            found = format_named(name)
            if name != "onnx" and judge_of(found).command_views:
                kinds.extend(found.suffixes)
        except Exception:  # a broken format plugin is reported where a file of it is read, not in help
            continue
    return " or ".join(kinds)


def _is_spec(model: str | None) -> bool:
    """A spec file given where a model is wanted: by its .yaml name or, whatever its name, by a line
    starting with the `edgecheck:` key in its first bytes (text: a model file holds NUL bytes)."""
    if not model:
        return False
    path = Path(model)
    if path.suffix.lower() in (".yaml", ".yml"):
        return True
    if not path.is_file():  # a FIFO or a device is never opened here
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b"\0" not in head and re.search(rb"(?m)^edgecheck:", head) is not None  # text with the spec's key


def _analyse(args: argparse.Namespace):
    from edgecheck.analysis.costs import model_facts
    from edgecheck.analysis.graph import analyse

    graph = analyse(args.model, _shapes(args.input))
    return graph, model_facts(graph)


def _static(run):
    """Runs a static-analysis command; a bad model, profile or table is one line on stderr, exit 2."""
    def wrapped(args: argparse.Namespace, extra: list[str]) -> int:
        from edgecheck.errors import EdgecheckError

        if _is_spec(getattr(args, "model", None)):
            command = run.__name__.lstrip("_")
            print(f"edgecheck: {args.model} is a spec (YAML) file, not a model: `edgecheck {command}` takes an "
                  f"{_read_kinds()} file (the one its model: path names); a spec runs with `edgecheck check "
                  f"{args.model}` (or pytest {args.model})", file=sys.stderr)
            return 2
        try:
            return run(args, extra)
        except (EdgecheckError, ValueError) as exc:
            print(f"edgecheck: {exc}", file=sys.stderr)
            return 2
    return wrapped


@_static
def _ops(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.analysis.ops import classify
    from edgecheck.analysis.optable import load_tables
    from edgecheck.analysis.static import table_for
    from edgecheck.devices import load_profiles
    from edgecheck.errors import CannotJudge
    from edgecheck.analysis.views import ops_lines
    from edgecheck.textable import format_table

    tables = load_tables([Path(p) for p in args.ops_dir])
    if args.tables:
        rows = [("table", "backend", "devices", "ops", "source")]
        for table in tables.values():
            rows.append((table.name, table.backend, ", ".join(table.devices) or "any", len(table.ops),
                         f"{table.source}, {table.version}"))
        print("\n".join(format_table(rows)))
        return 0
    if not args.model or not args.target:
        print("edgecheck ops: give MODEL and --target (or --tables)", file=sys.stderr)
        return 2
    profiles = load_profiles([Path(p) for p in args.devices_dir])
    if args.target not in profiles:
        from edgecheck.errors import did_you_mean

        print(f"edgecheck: unknown device {args.target!r} (known: {', '.join(sorted(profiles))})"
              + did_you_mean(args.target, profiles), file=sys.stderr)
        return 2
    profile = profiles[args.target]
    from edgecheck.analysis.graph import analyse

    own = _own_reader(args)
    graph = own[1].operators(Path(args.model)) if own else analyse(args.model, _shapes(args.input))
    from edgecheck.backends import backend_reads, backend_suffixes

    suffix, model_format = (own[0].suffix, own[0].name) if own else (".onnx", "onnx")
    worst, judged, foreign = 0, 0, []
    for backend in args.backend or list(profile.backends):
        try:
            table = table_for(tables, profile, backend, args.table, model_format)
        except CannotJudge as exc:
            formats = (*backend_suffixes(backend), *backend_reads(backend))
            if suffix not in formats:  # no table can help: the backend never takes such a file
                foreign.append(backend)
                reads = f"; its operator table judges {', '.join(backend_reads(backend))}" if backend_reads(backend) else ""
                exc = CannotJudge(f"{backend} cannot run a {suffix} model at all (it runs "
                                  f"{', '.join(backend_suffixes(backend))} files{reads}): convert the model for it, "
                                  "or check this file on a device with a backend that runs it")
            print(f"{args.target} / {backend}: {exc}\n")
            continue
        report = own[1].classify(graph, table) if own else classify(graph, table)  # type: ignore[arg-type]
        print(f"{args.target} / {backend}")
        print("\n".join("  " + line for line in ops_lines(report, args.all)))
        print()
        judged += 1
        worst = max(worst, 1 if report.counts()["unsupported"] else 0)
    if not judged and foreign and len(foreign) == len(args.backend or profile.backends):
        runs = sorted(n for n, p in profiles.items() if any(suffix in backend_suffixes(b) for b in p.backends))
        print(f"edgecheck: no backend of {args.target} ({', '.join(foreign)}) runs a {suffix} model; devices whose "
              f"backends do: {', '.join(runs) or 'none'}", file=sys.stderr)
        return 2
    if not judged:
        print(f"edgecheck: no operator table judged {args.model} on {args.target}", file=sys.stderr)
        return 2
    return worst


@_static
def _inspect(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.analysis.views import inspect_lines

    own = _own_reader(args)
    if own:
        print(own[1].inspect_text(Path(args.model), args.json))
        return 0
    graph, facts = _analyse(args)
    if args.json:
        print(json.dumps({**facts.summary(), "notes": facts.notes,
                          "nodes": [{"name": c.node.label, "op": c.node.key, "kind": c.kind, "macs": c.macs,
                                     "flops": c.flops, "weight_bytes": c.weight_bytes,
                                     "activation_bytes": c.activation_bytes} for c in facts.nodes]}, indent=2))
        return 0
    print("\n".join(inspect_lines(graph, facts, args.nodes)))
    return 0


@_static
def _fit(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.analysis.optable import load_tables
    from edgecheck.devices import load_profiles
    from edgecheck.analysis.views import fit_lines, fit_rows

    profiles = load_profiles([Path(p) for p in args.devices_dir])
    tables = load_tables([Path(p) for p in args.ops_dir])
    own = _own_reader(args)
    if own:
        print("\n".join(own[1].fit_lines(Path(args.model), profiles, tables, args.model) or []))
        return 0
    graph, facts = _analyse(args)
    print(f"{args.model}: {facts.parameters / 1e6:.3g} M parameters, {facts.macs / 1e9:.3g} G MACs, {facts.precision}")
    print("\n".join(fit_lines(fit_rows(graph, facts, profiles, tables))))
    return 0


def _schema(args: argparse.Namespace, extra: list[str]) -> int:
    if args.results:
        from edgecheck.results import RESULTS_SCHEMA as schema
    else:
        from edgecheck.compress import broken_recipe_plugins
        from edgecheck.errors import DeviceError
        from edgecheck.plan import spec_json_schema
        from edgecheck.spec.kinds import broken_checks

        try:
            schema = spec_json_schema([Path(p) for p in args.devices_dir])
        except DeviceError as exc:
            print(f"edgecheck: {exc}", file=sys.stderr)
            return 2
        for name, why in broken_checks().items():  # their budgets are missing from the schema: say why
            print(f"edgecheck: check kind {name!r} is not installed: {why}", file=sys.stderr)
        for name, why in broken_recipe_plugins().items():  # their recipes are missing from the schema
            print(f"edgecheck: recipe plug-in {name!r} is not installed: {why}", file=sys.stderr)
    print(json.dumps(schema, indent=2))
    return 0


def _boards(args: argparse.Namespace, extra: list[str]) -> int:
    """`edgecheck boards`: each board reached and checked, in a table; exit 1 if any cannot be used."""
    from edgecheck.boards.check import boards_command

    return boards_command(args.boards, args.board, args.json)


def _report(args: argparse.Namespace, extra: list[str]) -> int:
    """`edgecheck report RESULTS.json`: the run's Markdown summary, or its HTML page (-o *.html or
    --format html), from the file `--edge-results` wrote."""
    output = Path(args.output) if args.output else None
    html = args.format == "html" or (args.format is None and output is not None
                                     and output.suffix.lower() in (".html", ".htm"))
    if html:
        from edgecheck.report.html import html_command

        return html_command(Path(args.results), output)
    from edgecheck.report.markdown import report_command

    return report_command(Path(args.results), output)


def _compare(args: argparse.Namespace, extra: list[str]) -> int:
    """`edgecheck compare BASE.json HEAD.json`: what moved between two runs, as Markdown."""
    from edgecheck.report.compare import compare_command

    return compare_command(Path(args.base), Path(args.head), Path(args.output) if args.output else None,
                           args.threshold / 100)


def build_parser(check_options: bool = True) -> argparse.ArgumentParser:
    from edgecheck import __version__

    parser = argparse.ArgumentParser(prog="edgecheck", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edgecheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    plain_add = commands.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand whose `--help` says what it does (its one-line help, unless it has a description)."""
        kwargs.setdefault("description", kwargs.get("help"))
        return plain_add(name, **kwargs)

    commands.add_parser = add_parser  # type: ignore[method-assign]
    check = commands.add_parser("check", help="run spec files as pytest tests",
                                description="Run spec files through pytest; every --edge-X option of the pytest "
                                "plugin is --X here, and arguments after -- go to pytest.")
    check.add_argument("specs", nargs="*", help="spec files or folders (default: specs)")
    check.add_argument("--junitxml", help="write a JUnit XML report here")
    if check_options:  # (they come from the plugin, which imports pytest: ~0.5 s other commands need not pay)
        from edgecheck.cli_check import add_check_arguments

        add_check_arguments(check)  # every --edge-* option of the pytest plugin, named without edge-
    check.set_defaults(run=_check)
    recipes = commands.add_parser("recipes", help="list compression recipes and their parameters")
    recipes.set_defaults(run=_recipes)
    cache = commands.add_parser("cache", help="show or clear the artifact cache")
    cache.add_argument("action", choices=("info", "clear"), nargs="?", default="info")
    cache.add_argument("--cache-dir", help="the cache folder (default: $EDGECHECK_CACHE_DIR, else "
                       "./.edgecheck/cache)")
    cache.set_defaults(run=_cache)
    devices = commands.add_parser("devices", help="list device profiles")
    devices.add_argument("--devices-dir", action="append", default=[], help="a folder of project profiles")
    devices.add_argument("--json", action="store_true", help="print the profiles as JSON")
    devices.set_defaults(run=_devices)
    env = commands.add_parser("env", help="list or create the tool environments converters run in",
                              description="Converters whose pinned versions clash with edgecheck's (onnx2tf, "
                              "rknn-toolkit2) "
                              "each run in a virtual environment of their own, made once by `edgecheck env "
                              "create NAME` (in $EDGECHECK_ENVS, else $XDG_DATA_HOME/edgecheck/envs, "
                              "else ~/.local/share/edgecheck/envs); "
                              "EDGECHECK_ENV_<NAME> points at a venv you manage instead.")
    env.set_defaults(run=_env, action="list")
    env_actions = env.add_subparsers(dest="action")
    env_actions.add_parser("list", help="each environment: state, path, tool version or what to run")
    env_create = env_actions.add_parser("create", help="create (or rebuild when stale) an environment")
    env_create.add_argument("name")
    env_create.add_argument("--path", help="put it here instead (then set EDGECHECK_ENV_<NAME> to it)")
    env_create.add_argument("--force", action="store_true", help="rebuild even if it is ready")
    env_create.add_argument("--python", help="the interpreter to make the venv with (default: this one)")
    env_needed = env_actions.add_parser(
        "needed", help="the environments a run of these specs needs (one per line; --json: targets, envs per "
        "target, definition digests for a CI cache key)",
        description="Collect the spec files as `pytest SPECS --collect-only` would (the project's ini options, such "
        "as edge_spec_patterns, edge_devices_dir and edge_targets, count) and print the tool environments their "
        "planned entries use: an rknn-* entry needs rknn only for a target whose backends run .rknn files. A CI "
        "workflow uses it to build its matrix of targets and to create and cache only what each target needs. "
        "Arguments after -- go to pytest. Exit 2, naming file, line and field, when a spec is broken.")
    env_needed.add_argument("specs", nargs="*", default=["specs"], help="spec files or folders (default: specs)")
    env_needed.add_argument("--target", action="append", default=[], metavar="DEVICE",
                            help="only this device target (repeatable; default: every target the specs name)")
    env_needed.add_argument("--json", action="store_true", help="print targets, environments per target, spec "
                            "files per target and each environment's definition digest as JSON")
    env_path = env_actions.add_parser("path", help="print the environment's interpreter (exit 1 if not ready)")
    env_path.add_argument("name")
    boards = commands.add_parser("boards", help="check each board of the lab: reachable, python, numpy, runtimes, "
                                 "governor, temperature, free disk (exit 1 if any cannot be used)",
                                 description="Reach each board of the boards file over ssh and say what a run "
                                 "would find there.")
    boards.add_argument("--boards", metavar="FILE", help="the boards file (default: $EDGECHECK_BOARDS, else the "
                        "pytest ini option edge_boards in this folder)")
    boards.add_argument("--board", action="append", default=[], metavar="DEVICE=SSH",
                        help="one more board, as --edge-board (repeatable)")
    boards.add_argument("--json", action="store_true", help="print every board's facts as JSON")
    boards.set_defaults(run=_boards)
    report = commands.add_parser("report", help="a run's Markdown summary or HTML report from its --edge-results "
                                 "file",
                                 description="Print (or write) the Markdown summary of a run from the JSON document "
                                 "--edge-results wrote: a table per target, failures and inconclusive verdicts first. "
                                 "With -o report.html (or --format html): one self-contained HTML page with plots "
                                 "(needs pip install 'pytest-edgecheck[html]').")
    report.add_argument("results", help="the results JSON of a run (--edge-results)")
    report.add_argument("-o", "--output", help="write it here instead of printing it (.html/.htm: the HTML page)")
    report.add_argument("--format", choices=("markdown", "html"), default=None,
                        help="the format (default: html for an -o ending in .html or .htm, else markdown)")
    report.set_defaults(run=_report)
    compare = commands.add_parser("compare", help="what moved between two runs' --edge-results files, as Markdown "
                                  "(exit 1 if a verdict got worse)",
                                  description="Every figure that moved between BASE (e.g. the main branch's last "
                                  "run) and HEAD, with its direction and whether it crossed its budget; verdict "
                                  "changes first. Exit 1 if any verdict got worse, 2 if a file cannot be read.")
    compare.add_argument("base", help="the base run's results JSON")
    compare.add_argument("head", help="this run's results JSON")
    compare.add_argument("-o", "--output", help="write the Markdown here instead of printing it")
    compare.add_argument("--threshold", type=float, default=0.0, metavar="PERCENT",
                         help="leave out figures that moved by this many percent or less (default 0: every move)")
    compare.set_defaults(run=_compare)
    schema = commands.add_parser("schema", help="print the JSON Schema of spec files: the installed recipes "
                                 "with their parameters, device profiles, backends and check kinds' budgets",
                                 description="Print the JSON Schema of spec files ($id "
                                 "https://edgecheck.dev/schema/spec-v1.json) for editors and validators: recipe "
                                 "names and each recipe's parameters, device names, backends and metrics as this "
                                 "installation (with its plug-ins) knows them.")
    schema.add_argument("--devices-dir", action="append", default=[], help="a folder of project device profiles, "
                        "whose names become valid targets too (as the ini option edge_devices_dir)")
    schema.add_argument("--results", action="store_true",
                        help="print the JSON Schema of the --edge-results document instead")
    schema.set_defaults(run=_schema)

    def analysis_parser(name: str, help: str, model_required: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("model", nargs=None if model_required else "?", help=f"an {_read_kinds()} file")
        sub.add_argument("--input", action="append", default=[], metavar="NAME=1x3x224x224",
                         help="fix an input's shape (default: dynamic dimensions taken as 1)")
        sub.add_argument("--devices-dir", action="append", default=[], help="a folder of project device profiles")
        sub.add_argument("--ops-dir", action="append", default=[], help="a folder of project operator tables")
        return sub

    ops = analysis_parser("ops", "classify every node against a target's operator tables: supported, "
                          "constraint, fallback, unsupported (exit 1 if any node is unsupported)", False)
    ops.add_argument("--target", help="device profile, e.g. rk3588")
    ops.add_argument("--backend", action="append", default=[], help="only this backend (repeatable)")
    ops.add_argument("--table", help="judge against this table instead of the profile's")
    ops.add_argument("--all", action="store_true", help="list every node, not only those not supported as they are")
    ops.add_argument("--tables", action="store_true", help="list the operator tables and their sources")
    ops.set_defaults(run=_ops)
    inspect = analysis_parser("inspect", "model facts: signature, parameters, MACs, bytes moved, activation peak")
    inspect.add_argument("--nodes", action="store_true", help="each node's cost too")
    inspect.add_argument("--json", action="store_true", help="print the facts as JSON")
    inspect.set_defaults(run=_inspect)
    fit = analysis_parser("fit", "rank the device profiles for this model: estimated latency, memory headroom, "
                          "operator compatibility")
    fit.set_defaults(run=_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    args = build_parser(check_options="check" in argv).parse_args(argv)
    try:
        return args.run(args, extra)
    except BrokenPipeError:  # `edgecheck schema | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
