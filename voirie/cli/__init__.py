"""The ``voirie`` command. Each command parses its arguments and calls one function; the
commands live in small modules by concern and are gathered here.

A command's module is imported only when that command runs (or when ``voirie --help``
lists them all): ``voirie import`` does not pay for the web server, the maps or the rule
learning at every start, nor the server for the import's modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click

from voirie.cli.quick_exit import exit_quickly, may_exit_quickly

COMMANDS: dict[str, tuple[str, str]] = {
    "import": ("data", "import_command"),
    "export": ("export", "export_command"),
    "serve": ("server", "serve_command"),
    "worker": ("server", "worker_command"),
    "demo": ("server", "demo_command"),
    "db": ("admin", "db"),
    "tokens": ("admin", "tokens"),
    "layers": ("admin", "layers"),
    "incidents": ("admin", "incidents"),
    "rules": ("rules", "rules"),
    "dedupe": ("dedupe", "dedupe"),
    "city": ("city", "city"),
    "users": ("users", "users"),
    "privacy": ("privacy", "privacy"),
}
"""Command name -> (module of ``voirie.cli``, attribute): where each command is defined."""


class _LazyGroup(click.Group):
    """A group whose commands are imported from their module when first asked for."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's ``main``. Run as the console script (the arguments from the command
        line), the process then ends without tearing the interpreter down
        (``voirie.cli.quick_exit``); called with arguments (tests, other programs), it
        returns or raises as click does."""
        try:
            return super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except SystemExit as ended:
            status = ended.code
            if args is None and isinstance(status, int | None) and may_exit_quickly():
                exit_quickly(status or 0)
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, without importing any."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command named ``cmd_name``, its module imported now; ``None`` if unknown."""
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"voirie.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup)
@click.version_option(package_name="voirie")
def main() -> None:
    """voirie: street incident reports, snapped to streets, grouped into incidents, routed to
    the right team, and published as maps and GIS layers."""


__all__ = ["main"]
