"""The `edgecheck` command: `check` runs the spec tests through pytest (same exit codes),
`devices` lists device profiles, `schema` prints the spec JSON Schema for editors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _check(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    argv = [str(p) for p in (args.specs or ["specs"])]
    argv += [f"--edge-target={t}" for t in args.target]
    argv += [f"--edge-backend={b}" for b in args.backend]
    if args.strict:
        argv.append("--edge-strict")
    if args.junitxml:
        argv.append(f"--junitxml={args.junitxml}")
    return int(pytest.main(argv + extra))


def _devices(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.devices import load_profiles
    from edgecheck.errors import DeviceError

    try:
        profiles = load_profiles([Path(p) for p in args.devices_dir])
    except DeviceError as exc:
        print(f"edgecheck: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({name: p.model_dump(mode="json") for name, p in profiles.items()}, indent=2))
        return 0
    rows = [("device", "compute", "memory", "power", "cpu", "backends (preferred first)")]
    for name, p in sorted(profiles.items()):
        compute = f"{p.compute.tops:g} TOPS {p.compute.unit}" if p.compute.tops else p.compute.unit
        rows.append((name, compute, f"{p.memory_gb:g} GB" if p.memory_gb else "-",
                     f"{p.power_w:g} W" if p.power_w else "-",
                     f"{p.cpu.cores or '?'}x {p.cpu.arch or '?'}", ", ".join(p.backends)))
    from edgecheck.report.table import format_table

    print("\n".join(format_table(rows)))
    return 0


def _schema(args: argparse.Namespace, extra: list[str]) -> int:
    from edgecheck.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecheck", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="run spec files as pytest tests",
                                description="Run spec files through pytest; arguments after -- go to pytest.")
    check.add_argument("specs", nargs="*", help="spec files or folders (default: specs)")
    check.add_argument("--target", action="append", default=[], help="device profile (repeatable; 'all')")
    check.add_argument("--backend", action="append", default=[], help="only this backend (repeatable)")
    check.add_argument("--strict", action="store_true", help="fail checks whose backend cannot run here")
    check.add_argument("--junitxml", help="write a JUnit XML report here")
    check.set_defaults(run=_check)
    devices = commands.add_parser("devices", help="list device profiles")
    devices.add_argument("--devices-dir", action="append", default=[], help="a folder of project profiles")
    devices.add_argument("--json", action="store_true", help="print the profiles as JSON")
    devices.set_defaults(run=_devices)
    schema = commands.add_parser("schema", help="print the JSON Schema of spec files")
    schema.set_defaults(run=_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[: argv.index("--")]
    args = build_parser().parse_args(argv)
    return args.run(args, extra)


if __name__ == "__main__":
    raise SystemExit(main())
