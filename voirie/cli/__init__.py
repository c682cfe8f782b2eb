"""The ``voirie`` command. Each command parses its arguments and calls one function; the
commands live in small modules by concern and are gathered here."""

from __future__ import annotations

import click

from voirie.cli import admin, city, data, dedupe, privacy, rules, server, users


@click.group()
@click.version_option(package_name="voirie")
def main() -> None:
    """voirie: street incident reports, snapped to streets, grouped into incidents, routed to
    the right team, and published as maps and GIS layers."""


for command in (
    data.import_command,
    data.export_command,
    server.serve_command,
    server.worker_command,
    server.demo_command,
    admin.db,
    admin.tokens,
    admin.layers,
    admin.incidents,
    rules.rules,
    dedupe.dedupe,
    city.city,
    users.users,
    privacy.privacy,
):
    main.add_command(command)

__all__ = ["main"]
