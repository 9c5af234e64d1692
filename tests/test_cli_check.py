"""`edgecheck check` takes every `--edge-*` option of the pytest plugin under its own name, passes each to
the run, and its usage errors name its own flags."""

from __future__ import annotations

import re

import pytest

from edgecheck.cli import build_parser, main
from edgecheck.cli_check import check_argv, plugin_options

SPEC = """
edgecheck: 1
model: {path: ../models/clf.onnx}
targets:
  host:
    backends: [onnxruntime]
    budgets: {size_mb: 1}
"""
# a value of each kind an option takes, by the option's metavar or action
SAMPLES = {"DEVICE": "host", "NAME": "main", "DIR": "cache-here", "SECONDS": "12.5", "MIB": "512",
           "PATH": "out.file", "FRACTION": "0.2", "DEVICE=SSH": "rk3588=ci@10.0.0.5"}


def _plugin_flags(pytester: pytest.Pytester) -> set[str]:
    """The --edge-* flags pytest itself lists in its help, with this plugin loaded: independent of how
    `check` reads them."""
    result = pytester.runpytest("--help")
    return set(re.findall(r"^\s+(--edge-[a-z-]+)", result.stdout.str(), re.MULTILINE))


def _check_flags() -> set[str]:
    check = build_parser()._subparsers._group_actions[0].choices["check"]  # type: ignore[union-attr]
    return {flag for action in check._actions for flag in action.option_strings}


def test_every_plugin_option_has_a_check_counterpart(pytester):
    flags = _plugin_flags(pytester)
    assert len(flags) >= 16 and "--edge-target" in flags
    assert {"--" + flag.removeprefix("--edge-") for flag in flags} <= _check_flags()
    assert {o.plugin_flag for o in plugin_options()} == flags


@pytest.mark.parametrize("option", plugin_options(), ids=lambda o: o.flag)
def test_each_option_reaches_pytest_as_the_plugin_option(pytester, option):
    """Given to `check` under its own name, the option reaches pytest's config with the same value as the
    plugin's own flag would give it."""
    action = option.attrs.get("action")
    if action == "store_true":
        given = [option.flag]
    elif option.attrs.get("choices"):
        given = [option.flag, option.attrs["choices"][-1]]
    else:
        given = [option.flag, SAMPLES[option.attrs["metavar"]]]
    args = build_parser().parse_args(["check", *given])
    argv = check_argv(args)
    assert argv and all(arg.split("=")[0] == option.plugin_flag for arg in argv)
    via_check = pytester.parseconfig(*argv).getoption(option.dest)
    direct = pytester.parseconfig(*([option.plugin_flag, *given[1:]])).getoption(option.dest)
    assert via_check == direct and via_check not in (None, [], False)


def test_no_option_given_passes_nothing():
    assert check_argv(build_parser().parse_args(["check"])) == []


def test_help_names_the_command_flags(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    options = capsys.readouterr().out.split("options:")[1]
    assert "refusing to replace an existing one unless --overwrite-baseline" in " ".join(options.split())
    assert "--edge-" not in options


def test_a_usage_error_names_the_command_flag(pytester, spec_project, monkeypatch, capsys):
    spec_project(SPEC)
    monkeypatch.chdir(pytester.path)
    assert main(["check", "--save-baseline", "bad name!", "--", "-p", "no:cacheprovider"]) == 4
    error = capsys.readouterr().err
    assert "--save-baseline" in error and "--edge-" not in error
    assert main(["check", "--backend", "nonesuch", "--", "-p", "no:cacheprovider"]) == 4
    error = capsys.readouterr().err
    assert "--backend: unknown backend 'nonesuch'" in error and "--edge-backend" not in error


def test_the_plugin_own_run_still_names_its_flags(pytester, spec_project):
    spec_project(SPEC)
    result = pytester.runpytest("specs", "--edge-backend=nonesuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--edge-backend: unknown backend 'nonesuch'*"])


def test_an_invalid_choice_is_refused_by_the_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--inconclusive", "maybe"])
    assert info.value.code == 2
    assert "--inconclusive" in capsys.readouterr().err
