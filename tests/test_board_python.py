"""The modules that run on a board run under the board's Python, which may be as old as 3.8 (Ubuntu 20.04,
JetPack 5): they must parse as 3.8 and use nothing newer at run time.

Parsing: `ast.parse(feature_version=(3, 8))` (match, parenthesized context managers, except*), plus what it
lets through (a decorator that is not a dotted name and call, a starred subscript). Run time: an AST scan
for the 3.9+ APIs edgecheck could reach for (str.removeprefix, functools.cache, single-argument
traceback.format_exception, zip(strict=), importlib.metadata.entry_points(group=), typing names and modules
added later) and for PEP 585/604 forms evaluated at run time (isinstance(x, int | str), dict[str, int] in a
cast or an alias, collections.abc.Mapping[...]). Annotations are not evaluated under
`from __future__ import annotations`; a file without it must keep them 3.8-valid too. Code under
`if TYPE_CHECKING:` or `if sys.version_info >= (3, N):` is not run on an older Python and is not scanned.
Where a real Python 3.8 is installed, it compiles every one of these files and imports the ones that need
only the standard library.
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

MINIMUM = (3, 8)
# the modules a worker on a board imports (or that are sent there as source); a new board-side module joins here
BOARD_SIDE = (
    "edgecheck/__init__.py",
    "edgecheck/errors.py",
    "edgecheck/units.py",
    "edgecheck/processes.py",
    "edgecheck/entrypoints.py",
    "edgecheck/worker/*.py",
    "edgecheck/backends/__init__.py",
    "edgecheck/backends/base.py",
    "edgecheck/backends/registry.py",
    "edgecheck/vendors/__init__.py",
    "edgecheck/vendors/*/__init__.py",
    "edgecheck/vendors/*/backend.py",
    "edgecheck/vendors/rknn/lite.py",  # RKNNLite's runner: it runs on an RK3588's Python
    # TensorRT on a Jetson (issue 20): the worker builds, runs and times engines and reads the rails there
    "edgecheck/vendors/tensorrt/trtexec.py",
    "edgecheck/vendors/tensorrt/engine.py",
    "edgecheck/vendors/tensorrt/exports.py",
    "edgecheck/vendors/tensorrt/layers.py",
    "edgecheck/vendors/tensorrt/power.py",
    "edgecheck/vendors/tensorrt/timing.py",
    "edgecheck/vendors/tensorrt/runners.py",
    "edgecheck/vendors/onnxruntime/gpu.py",  # onnxruntime-trt / onnxruntime-cuda run in a Jetson's worker
    "edgecheck/boards/probe.py",
)
# board-side modules that may not exist yet on every branch: scanned where present
BOARD_SIDE_OPTIONAL = ("edgecheck/boards/agent.py",)
# what a real 3.8 imports from these (standard library only: no numpy in a bare interpreter)
STDLIB_ONLY = ("edgecheck", "edgecheck.errors", "edgecheck.units", "edgecheck.processes", "edgecheck.entrypoints",
               "edgecheck.vendors.tensorrt.trtexec", "edgecheck.vendors.tensorrt.engine",
               "edgecheck.vendors.tensorrt.power", "edgecheck.worker.power")
# board-side modules that may use numpy beside the standard library (the worker has it), and nothing else
NUMPY_TOO = ("edgecheck.vendors.tensorrt.exports", "edgecheck.vendors.tensorrt.layers",
             "edgecheck.vendors.tensorrt.timing", "edgecheck.vendors.tensorrt.runners",
             "edgecheck.vendors.tensorrt.backend", "edgecheck.worker.native")

BUILTIN_GENERICS = {"dict", "list", "tuple", "set", "frozenset", "type"}
BUILTIN_TYPES = BUILTIN_GENERICS | {"int", "str", "float", "bool", "bytes", "bytearray", "complex", "object"}
# attributes called on anything: methods that exist only on 3.9+ str, Path, int
NEW_METHODS = {"removeprefix": (3, 9), "removesuffix": (3, 9), "is_relative_to": (3, 9), "with_stem": (3, 9),
               "bit_count": (3, 10)}
# module.attribute → the version that added it
NEW_ATTRIBUTES = {
    "functools.cache": (3, 9), "math.lcm": (3, 9), "random.randbytes": (3, 9), "asyncio.to_thread": (3, 9),
    "os.waitstatus_to_exitcode": (3, 9), "importlib.resources.files": (3, 9), "itertools.pairwise": (3, 10),
    "sys.orig_argv": (3, 10), "sys.stdlib_module_names": (3, 10), "hashlib.file_digest": (3, 11),
    "datetime.UTC": (3, 11), "enum.StrEnum": (3, 11), "contextlib.chdir": (3, 11), "itertools.batched": (3, 12),
    "typing.Annotated": (3, 9), "typing.ParamSpec": (3, 10), "typing.Concatenate": (3, 10),
    "typing.TypeAlias": (3, 10), "typing.TypeGuard": (3, 10), "typing.is_typeddict": (3, 10),
    "typing.Self": (3, 11), "typing.LiteralString": (3, 11), "typing.Never": (3, 11), "typing.assert_never": (3, 11),
    "typing.assert_type": (3, 11), "typing.reveal_type": (3, 11), "typing.Unpack": (3, 11),
    "typing.TypeVarTuple": (3, 11), "typing.Required": (3, 11), "typing.NotRequired": (3, 11),
    "typing.dataclass_transform": (3, 11), "typing.override": (3, 12), "typing.TypeAliasType": (3, 12),
}
NEW_MODULES = {"zoneinfo": (3, 9), "graphlib": (3, 9), "tomllib": (3, 11)}
NEW_BUILTINS = {"aiter": (3, 10), "anext": (3, 10), "ExceptionGroup": (3, 11), "BaseExceptionGroup": (3, 11)}
# the single-argument form (the exception alone) of these came in 3.10
EXCEPTION_FORMATTERS = {"traceback.format_exception", "traceback.print_exception", "traceback.format_exception_only"}
# keyword arguments a 3.8 function does not take
NEW_KEYWORDS = {("zip", "strict"): (3, 10), ("dataclasses.dataclass", "slots"): (3, 10),
                ("dataclasses.dataclass", "kw_only"): (3, 10), ("dataclasses.dataclass", "match_args"): (3, 10)}


def board_side_files() -> list[Path]:
    files = []
    for pattern in BOARD_SIDE:
        found = sorted(glob.glob(str(ROOT / pattern)))
        assert found, f"{pattern} names no file: the list of board-side modules is out of date"
        files += found
    for pattern in BOARD_SIDE_OPTIONAL:
        files += sorted(glob.glob(str(ROOT / pattern)))
    return [Path(f) for f in dict.fromkeys(files)]


def _where(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class Scan(ast.NodeVisitor):
    """The 3.9+ forms and APIs one module uses at run time, as 'file:line: what (3.N)'."""

    def __init__(self, path: Path, tree: ast.Module):
        self.path = path
        self.offences: list[str] = []
        self.future_annotations = any(
            isinstance(node, ast.ImportFrom) and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
        self.aliases: dict[str, str] = {}  # local name → the module or module.attribute it stands for
        self.abc_names: set[str] = set()  # names bound to collections.abc's (or collections') generic classes
        self.function_depth = 0

    # --- bookkeeping ------------------------------------------------------------------------------

    def report(self, node: ast.AST, what: str, version: tuple[int, int]) -> None:
        self.offences.append(f"{_where(self.path)}:{getattr(node, 'lineno', '?')}: {what} (Python {_version(version)}+)")

    def qualified(self, node: ast.AST) -> str | None:
        """`module.attribute` for a name or an attribute chain, through the module's imports."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    @staticmethod
    def skipped_if(test: ast.expr) -> bool:
        """`if TYPE_CHECKING:` and `if sys.version_info >= (3, N):` (N > 8): the body never runs on 3.8."""
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            return True
        if isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
            return True
        if (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], (ast.GtE, ast.Gt))
                and isinstance(test.left, ast.Attribute) and test.left.attr == "version_info"):
            try:
                bound = ast.literal_eval(test.comparators[0])
            except ValueError:
                return False
            return isinstance(bound, tuple) and tuple(bound[:2]) > MINIMUM
        return False

    # --- imports ----------------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in NEW_MODULES:
                self.report(node, f"import {alias.name}", NEW_MODULES[top])
            self.aliases[alias.asname or top] = alias.name if alias.asname else top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and module.split(".")[0] in NEW_MODULES:
            self.report(node, f"from {module} import ...", NEW_MODULES[module.split(".")[0]])
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if node.level == 0 and full in NEW_ATTRIBUTES:
                self.report(node, f"from {module} import {alias.name}", NEW_ATTRIBUTES[full])
            self.aliases[alias.asname or alias.name] = full
            if module in ("collections.abc", "collections"):
                self.abc_names.add(alias.asname or alias.name)

    # --- scopes: annotations and guarded blocks ----------------------------------------------------

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        if not self.skipped_if(node.test):
            for child in node.body:
                self.visit(child)
        for child in node.orelse:
            self.visit(child)

    def _annotation(self, annotation: ast.expr | None, evaluated: bool) -> None:
        """An annotation: not evaluated under the future import (or as a local variable's), else checked
        like any run-time expression."""
        if annotation is not None and evaluated and not self.future_annotations:
            self.visit(annotation)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self._decorator(decorator)
            self.visit(decorator)
        arguments = node.args
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                         *filter(None, (arguments.vararg, arguments.kwarg))]:
            self._annotation(argument.annotation, True)
        for default in [*arguments.defaults, *filter(None, arguments.kw_defaults)]:
            self.visit(default)
        self._annotation(node.returns, True)
        self.function_depth += 1
        for child in node.body:
            self.visit(child)
        self.function_depth -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self._decorator(decorator)
            self.visit(decorator)
        for child in [*node.bases, *(k.value for k in node.keywords)]:
            self.visit(child)
        depth, self.function_depth = self.function_depth, 0  # a class body's annotations are evaluated
        for child in node.body:
            self.visit(child)
        self.function_depth = depth

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation, self.function_depth == 0)
        self.visit(node.target)
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:  # a lambda's arguments: no annotations
        pass

    def _decorator(self, node: ast.expr) -> None:
        """3.8's grammar: a dotted name, optionally called once (PEP 614's any expression is 3.9)."""
        target = node.func if isinstance(node, ast.Call) else node
        while isinstance(target, ast.Attribute):
            target = target.value
        if not isinstance(target, ast.Name):
            self.report(node, "a decorator that is not a dotted name (PEP 614)", (3, 9))

    # --- run-time expressions --------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.qualified(node)
        if name in NEW_ATTRIBUTES:
            self.report(node, name, NEW_ATTRIBUTES[name])
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in NEW_BUILTINS and node.id not in self.aliases and isinstance(node.ctx, ast.Load):
            self.report(node, f"the builtin {node.id}", NEW_BUILTINS[node.id])

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr in NEW_METHODS:
            self.report(node, f".{node.func.attr}()", NEW_METHODS[node.func.attr])
        if name in EXCEPTION_FORMATTERS and len(node.args) == 1 and not node.keywords:
            self.report(node, f"{name}(exc), the single-argument form (pass type(exc), exc, exc.__traceback__)",
                        (3, 10))
        if name in ("importlib.metadata.entry_points", "importlib_metadata.entry_points") and node.keywords:
            self.report(node, f"{name}({', '.join(f'{k.arg}=' for k in node.keywords)}...): 3.8's takes no "
                        "arguments and returns a dict of groups", (3, 10))
        for keyword in node.keywords:
            if (name, keyword.arg) in NEW_KEYWORDS:
                self.report(node, f"{name}({keyword.arg}=...)", NEW_KEYWORDS[(name, keyword.arg)])
        if name in ("isinstance", "issubclass") and len(node.args) == 2:
            self._union(node.args[1], force=True)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if self._generic(node):
            self.report(node, f"{ast.unparse(node)} evaluated at run time (PEP 585 generic)", (3, 9))
        slice_ = node.slice
        if isinstance(slice_, ast.Tuple) and any(isinstance(e, ast.Starred) for e in slice_.elts):
            self.report(node, f"{ast.unparse(node)}: a starred subscript", (3, 11))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if not self._union(node):
            self.generic_visit(node)

    def _generic(self, node: ast.Subscript) -> bool:
        """dict[...], list[...], collections.abc.Mapping[...]: subscripting a class that is generic on 3.9+ only."""
        value = node.value
        if isinstance(value, ast.Name):
            return (value.id in BUILTIN_GENERICS and value.id not in self.aliases) or value.id in self.abc_names
        name = self.qualified(value) or ""
        return name.startswith(("collections.abc.", "collections.")) and name.count(".") <= 2

    def _type_like(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and node.value is None:
            return True
        if isinstance(node, ast.Name) and node.id in BUILTIN_TYPES and node.id not in self.aliases:
            return True
        return isinstance(node, ast.Subscript) and self._generic(node)

    def _union(self, node: ast.expr, force: bool = False) -> bool:
        """`X | Y` of types (PEP 604) at run time: an operand that is a builtin type, None or a generic,
        or any `|` in isinstance's second argument."""
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)):
            return False
        operands, stack = [], [node]
        while stack:
            item = stack.pop()
            if isinstance(item, ast.BinOp) and isinstance(item.op, ast.BitOr):
                stack += [item.left, item.right]
            else:
                operands.append(item)
        if force or any(self._type_like(o) for o in operands):
            self.report(node, f"{ast.unparse(node)} evaluated at run time (PEP 604 union)", (3, 10))
            return True
        return False


def offences_in(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path), feature_version=MINIMUM)
    except SyntaxError as exc:
        return [f"{_where(path)}:{exc.lineno}: does not parse as Python {_version(MINIMUM)}: {exc.msg}"]
    scan = Scan(path, tree)
    scan.visit(tree)
    return scan.offences


def scan_source(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "module.py"
    path.write_text(source)
    return offences_in(path)


def test_board_side_modules_are_python_38():
    files = board_side_files()
    assert any(f.name == "probe.py" for f in files) and any(f.parent.name == "worker" for f in files)
    offences = [offence for path in files for offence in offences_in(path)]
    assert not offences, "board-side modules use what Python 3.8 lacks:\n" + "\n".join(offences)


# --- the scan itself: each offence it must find, and what it must let be ----------------------------------

@pytest.mark.parametrize("source, expected", [
    ("def f(s):\n    return s.removeprefix('a')\n", "2: .removeprefix() (Python 3.9+)"),
    ("x = 'abc'.removesuffix('c')\n", "1: .removesuffix() (Python 3.9+)"),
    ("import functools\n\n@functools.cache\ndef f():\n    pass\n", "3: functools.cache (Python 3.9+)"),
    ("from functools import cache\n", "1: from functools import cache (Python 3.9+)"),
    ("import traceback\ntry:\n    pass\nexcept Exception as exc:\n    traceback.format_exception(exc)\n",
     "5: traceback.format_exception(exc), the single-argument form"),
    ("from traceback import print_exception\nprint_exception(ValueError())\n",
     "2: traceback.print_exception(exc), the single-argument form"),
    ("pairs = list(zip([1], [2], strict=True))\n", "1: zip(strict=...) (Python 3.10+)"),
    ("from importlib.metadata import entry_points\nentry_points(group='x')\n",
     "2: importlib.metadata.entry_points(group=...): 3.8's takes no arguments"),
    ("import importlib.metadata\nimportlib.metadata.entry_points(group='x')\n", "2: importlib.metadata.entry_points(group="),
    ("def f(x):\n    return isinstance(x, int | str)\n", "2: int | str evaluated at run time (PEP 604 union)"),
    ("import numpy as np\ndef f(x):\n    return isinstance(x, np.ndarray | list)\n", "3: np.ndarray | list evaluated"),
    ("Alias = int | None\n", "1: int | None evaluated at run time (PEP 604 union)"),
    ("from typing import cast\ny = cast(dict[str, int], {})\n", "2: dict[str, int] evaluated at run time (PEP 585"),
    ("Pairs = list[tuple[int, int]]\n", "1: list[tuple[int, int]] evaluated at run time (PEP 585"),
    ("from collections.abc import Mapping\nFeed = Mapping[str, int]\n", "2: Mapping[str, int] evaluated at run time"),
    ("import collections.abc\nFeed = collections.abc.Mapping[str, int]\n", "2: collections.abc.Mapping[str, int] eval"),
    ("def f(x: dict[str, int]) -> list[int]:\n    return []\n", "1: dict[str, int] evaluated at run time"),
    ("def f(x: int | None):\n    pass\n", "1: int | None evaluated at run time (PEP 604 union)"),
    ("class A:\n    x: dict[str, int] = {}\n", "2: dict[str, int] evaluated at run time"),
    ("from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n    pass\n",
     "2: dataclasses.dataclass(slots=...) (Python 3.10+)"),
    ("@(lambda f: f)\ndef f():\n    pass\n", "1: a decorator that is not a dotted name (PEP 614) (Python 3.9+)"),
    ("from typing import Annotated\n", "1: from typing import Annotated (Python 3.9+)"),
    ("import zoneinfo\n", "1: import zoneinfo (Python 3.9+)"),
    ("from pathlib import Path\nPath('a').is_relative_to('b')\n", "2: .is_relative_to() (Python 3.9+)"),
    ("match 1:\n    case 1:\n        pass\n", "does not parse as Python 3.8"),
    ("with (open('a') as f, open('b') as g):\n    pass\n", "does not parse as Python 3.8"),
])
def test_scan_finds(tmp_path, source, expected):
    offences = scan_source(tmp_path, source)
    assert any(expected in offence for offence in offences), offences
    assert all(offence.startswith(f"{tmp_path / 'module.py'}:") for offence in offences), offences


@pytest.mark.parametrize("source", [
    # annotations under the future import are never evaluated
    "from __future__ import annotations\ndef f(x: dict[str, int] | None) -> list[int]:\n    return []\n",
    "from __future__ import annotations\nclass A:\n    x: dict[str, int | None] = {}\n",
    # a local variable's annotation is never evaluated, future import or not
    "def f():\n    x: dict[str, int] = {}\n    return x\n",
    # the 3.8 forms
    "import traceback\ntry:\n    pass\nexcept Exception as exc:\n    traceback.format_exception(type(exc), exc, exc.__traceback__)\n",
    "from typing import Dict, Optional, Union\nAlias = Dict[str, Optional[int]]\nisinstance(1, (int, str))\n",
    "x = 1 | 2\nflags = 0x1 | 0x4\n",
    "from importlib.metadata import entry_points\ngroups = entry_points()\n",
    "import functools\n@functools.lru_cache(maxsize=None)\ndef f():\n    pass\n",
    "import pytest\n@pytest.mark.parametrize('a', [1])\ndef test(a):\n    pass\n",
    "s = 'abc'\nt = s[len('a'):] if s.startswith('a') else s\n",
    # code that a newer Python alone runs, or a type checker alone reads
    "import sys\nif sys.version_info >= (3, 10):\n    pairs = zip([1], [2], strict=True)\nelse:\n    pairs = zip([1], [2])\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    Alias = dict[str, int]\n",
    "x = {'a': 1}\ny = x['a']\nz = [1][0]\n",
])
def test_scan_lets_be(tmp_path, source):
    assert scan_source(tmp_path, source) == []


def test_a_guard_for_38_itself_is_scanned(tmp_path):
    """`if sys.version_info >= (3, 8):` runs on 3.8: its body is checked."""
    source = "import sys\nif sys.version_info >= (3, 8):\n    s = 'a'.removeprefix('b')\n"
    assert scan_source(tmp_path, source)


# --- a real Python 3.8, where one is installed ------------------------------------------------------------

def python38() -> str | None:
    """A Python 3.8 interpreter that runs (python3.8 on PATH, or pyenv's; a pyenv shim of a version that is not
    selected does not), or None."""
    candidates = [shutil.which("python3.8"), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))]
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "-I", "-c", "import sys; print(sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0 and done.stdout.strip() == "(3, 8)":
            return candidate
    return None


def test_a_real_python_38_compiles_the_board_side_and_imports_what_needs_only_the_standard_library(tmp_path):
    interpreter = python38()
    if interpreter is None:
        pytest.skip("no Python 3.8 interpreter here (python3.8 on PATH or under ~/.pyenv): the AST scan stands alone")
    files = [str(f) for f in board_side_files()]
    program = (
        "import sys, py_compile\n"
        "bad = []\n"
        "for f in sys.argv[1:]:\n"
        "    try:\n"
        "        py_compile.compile(f, cfile=f + '.38.pyc', doraise=True)\n"
        "    except py_compile.PyCompileError as e:\n"
        "        bad.append(str(e))\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    copies = []
    for f in files:  # compiled from copies, so no .pyc lands beside the sources
        copy = tmp_path / Path(f).relative_to(ROOT).as_posix().replace("/", "__")
        copy.write_bytes(Path(f).read_bytes())
        copies.append(str(copy))
    done = subprocess.run([interpreter, "-I", "-c", program, *copies], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # the modules that need nothing but the standard library import and work under 3.8 (entry points included)
    # a distribution's entry points, read through 3.8's importlib.metadata (its entry_points() takes no group)
    site = tmp_path / "site"
    (site / "edgecheck_probe38-0.1.dist-info").mkdir(parents=True)
    (site / "edgecheck_probe38-0.1.dist-info" / "METADATA").write_text("Name: edgecheck-probe38\nVersion: 0.1\n")
    (site / "edgecheck_probe38-0.1.dist-info" / "entry_points.txt").write_text(
        "[edgecheck.probe38]\nmib = edgecheck.units:MIB\nbroken = edgecheck.no_such_module\n")
    importing = ("import sys; sys.path[:0] = sys.argv[1:3]; sys.dont_write_bytecode = True\n"
                 + "".join(f"import {name}\n" for name in STDLIB_ONLY)
                 + "from edgecheck.entrypoints import load_group\n"
                 + "assert load_group('edgecheck.no-such-group') == []\n"
                 + "found = {e.name: (e.value, e.error) for e in load_group('edgecheck.probe38')}\n"
                 + "assert found['mib'] == (2 ** 20, ''), found\n"
                 + "assert 'failed to import' in found['broken'][1], found\n"
                 + "print(sys.version_info[:2])\n")
    done = subprocess.run([interpreter, "-I", "-c", importing, str(ROOT), str(site)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "(3, 8)"


# what a board-side module may import: the standard library, numpy where the worker has it, and edgecheck's own
# board-side modules; a blocker refuses everything else (pydantic, onnx, edgecheck.analysis, ...) at import time
_IMPORT_GUARD = """
import sys
allowed_numpy = sys.argv[2] == "numpy"
host_only = ("edgecheck.analysis", "edgecheck.spec", "edgecheck.checks", "edgecheck.compress", "edgecheck.model",
             "edgecheck.formats", "edgecheck.measure", "edgecheck.boards.runs", "edgecheck.plugin")
class Guard:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "_distutils_hack":
            return None
        if top == "numpy" and allowed_numpy:
            return None
        if top == "edgecheck" and not name.startswith(host_only):
            return None
        raise ImportError("board-side import of " + name)
sys.meta_path.insert(0, Guard())
import importlib
importlib.import_module(sys.argv[1])
"""


@pytest.mark.parametrize("module", [m for m in STDLIB_ONLY if m.startswith("edgecheck.")] + list(NUMPY_TOO))
def test_board_side_modules_import_only_what_a_board_has(module):
    allowed = "numpy" if module in NUMPY_TOO else "stdlib"
    done = subprocess.run([sys.executable, "-c", _IMPORT_GUARD, module, allowed], capture_output=True, text=True,
                          timeout=120, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_import_guard_refuses_numpy_in_a_standard_library_module():
    done = subprocess.run([sys.executable, "-c", _IMPORT_GUARD, "edgecheck.vendors.tensorrt.exports", "stdlib"],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0 and "board-side import of numpy" in done.stderr
