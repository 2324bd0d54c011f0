"""The recipe options (-a, -C, --json, --diff, --debug) are declared once in cli.py and
taken by every command that compiles a recipe: apply, plan, check and test."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import typer.main

from converge import cli

RECIPE_COMMANDS = ("apply", "plan", "check", "test")
FLAGS = ("-a", "--attr", "-C", "--cookbook-path", "--json", "--diff", "--debug")


def command(name: str):  # type: ignore[no-untyped-def]
    group = typer.main.get_command(cli.app)
    return group.commands[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", RECIPE_COMMANDS)
def test_every_recipe_command_takes_the_recipe_options(name: str) -> None:
    opts = {opt for param in command(name).params for opt in param.opts}
    assert set(FLAGS) <= opts, sorted(set(FLAGS) - opts)


@pytest.mark.parametrize("name", RECIPE_COMMANDS)
def test_the_options_come_from_one_declaration(name: str) -> None:
    params = inspect.signature(command(name).callback).parameters
    for param, _, option in cli.RECIPE_OPTIONS:
        if name == "plan" and param == "diff":
            assert params[param].default is cli.PlanDiffOpt  # diffs by default
        else:
            assert params[param].default is option, (name, param)


def test_plan_shows_diffs_unless_no_diff() -> None:
    opts = {opt for param in command("plan").params for opt in param.opts}
    secondary = {opt for param in command("plan").params for opt in param.secondary_opts}
    assert "--diff" in opts and "--no-diff" in secondary


def test_recipe_options_as_apply_arguments(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    options = cli.RecipeOptions(attr=["a.b=1", "c=[x, y]"], cookbook_path=[cli.Path("books")],
                                json_file="out.json", diff=True, debug=True)
    assert options.apply_args() == ["-a", "a.b=1", "-a", "c=[x, y]",
                                    "-C", str(tmp_path / "books"), "--diff", "--debug"]


def test_test_command_parses_apply_options() -> None:
    done = subprocess.run([sys.executable, "-m", "converge", "test", "--help"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for flag in FLAGS:
        assert flag in done.stdout, flag
