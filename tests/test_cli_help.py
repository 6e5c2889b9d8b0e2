"""Every command's --help shows each option's default: a value, or a sentence saying where it comes from."""

from __future__ import annotations

import typer.main

from eventcount.cli import app


def commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_option_shows_its_default() -> None:
    silent = []
    for name, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if param.param_type_name != "option" or param.required or getattr(param, "is_flag", False):
                continue
            if param.default is None and not isinstance(param.show_default, str):
                silent.append(f"{name} --{param.name.replace('_', '-')}")
    assert not silent, f"options whose --help shows no default: {', '.join(silent)}"
