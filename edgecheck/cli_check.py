"""`edgecheck check`: a pytest run of spec files, taking every `--edge-*` option of the pytest plugin under
the command's own name (`--target` for `--edge-target`).

The options are read from the plugin's own `pytest_addoption`, recorded rather than parsed, so a new
plugin option is a `check` option too and the two cannot drift; a usage error the plugin raises is
reworded to name the flag the user typed.
"""

from __future__ import annotations

import argparse
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

PREFIX = "--edge-"
_TAKEN = {"--help", "--junitxml"}  # the command's own flags: a plugin option of such a name keeps its --edge- name


@dataclass(frozen=True)
class PluginOption:
    """One option as the plugin declares it: its flag, the command's flag for it and argparse's attributes."""

    plugin_flag: str
    flag: str
    attrs: dict[str, Any]

    @property
    def dest(self) -> str:
        return self.attrs.get("dest") or self.plugin_flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        return self.attrs.get("default")

    def argv(self, value: Any) -> list[str]:
        """The plugin's arguments for the value the command was given (none for the default)."""
        action = self.attrs.get("action")
        if action == "append":
            return [f"{self.plugin_flag}={item}" for item in value or ()]
        if action == "store_true":
            return [self.plugin_flag] if value else []
        return [] if value is None or value == self.default else [f"{self.plugin_flag}={value}"]


@dataclass
class _Recorder:
    """Stands for pytest's parser and option group while the plugin's `pytest_addoption` runs."""

    options: list[PluginOption] = field(default_factory=list)

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        return self

    def addoption(self, *names: str, **attrs: Any) -> None:
        flag = next((n for n in names if n.startswith("--")), names[0])
        if flag.startswith(PREFIX):
            own = "--" + flag[len(PREFIX):]
            self.options.append(PluginOption(flag, flag if own in _TAKEN else own, attrs))

    def addini(self, *args: Any, **kwargs: Any) -> None:
        pass


@functools.cache
def plugin_options() -> tuple[PluginOption, ...]:
    """Every `--edge-*` option the pytest plugin declares, in its order (recorded once: the parser, the
    arguments and the usage errors of one command all read it)."""
    from edgecheck.plugin import pytest_addoption

    recorder = _Recorder()
    pytest_addoption(recorder)  # type: ignore[arg-type]
    return tuple(recorder.options)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The plugin's options, under the command's names, with the plugin's help (naming the command's flags)."""
    options = plugin_options()
    for option in options:
        attrs = {k: v for k, v in option.attrs.items() if k != "dest"}
        attrs["help"] = own_names(attrs.get("help", ""), options).replace("%", "%%")  # argparse formats help
        if attrs.get("action") == "append":
            attrs["default"] = []
        parser.add_argument(option.flag, dest=option.dest, **attrs)


def check_argv(args: argparse.Namespace) -> list[str]:
    """The pytest arguments for the plugin options the command was given."""
    return [arg for option in plugin_options() for arg in option.argv(getattr(args, option.dest))]


def own_names(text: str, options: tuple[PluginOption, ...] | None = None) -> str:
    """`text` with each plugin flag replaced by the command's (--edge-target -> --target)."""
    names = {o.plugin_flag: o.flag for o in (options if options is not None else plugin_options())}
    return re.sub(r"--edge-[a-z0-9-]*[a-z0-9]", lambda m: names.get(m.group(0), m.group(0)), text)


class OwnFlagNames:
    """A plugin for the run `edgecheck check` starts: a usage error names the command's flags."""

    def __init__(self) -> None:
        self.options = plugin_options()

    @pytest.hookimpl(wrapper=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> Any:
        try:
            return (yield)
        except pytest.UsageError as exc:
            raise pytest.UsageError(*(own_names(str(arg), self.options) for arg in exc.args)) from None
