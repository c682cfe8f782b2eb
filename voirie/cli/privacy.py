"""``voirie privacy``: erase citizens' personal data after retention or on request."""

from __future__ import annotations

import click

from voirie.city import load_city
from voirie.cli.common import city_option, configured_store, console, fail_cleanly
from voirie.services import privacy as service
from voirie.store.privacy import Erased


@click.group()
def privacy() -> None:
    """Citizens' personal data: retention and erasure (names, emails, phones, devices)."""


@privacy.command("purge")
@city_option
@fail_cleanly
def purge(city: str) -> None:
    """Erase the contact data of incidents closed longer ago than privacy.retention_days
    (city.yaml). The worker does this every hour; run it by hand or from cron."""
    loaded = load_city(city, check_files=False)
    store = configured_store()
    try:
        _print(service.purge(store, loaded))
    finally:
        store.close()


@privacy.command("erase")
@click.argument("email")
@city_option
@fail_cleanly
def erase(email: str, city: str) -> None:
    """Erase everything kept about EMAIL at its owner's request: reporter contacts,
    "me too"s, follows, consent and emails sent. Reports and counts stay, anonymous."""
    loaded = load_city(city, check_files=False)
    store = configured_store()
    try:
        _print(service.erase(store, loaded, email))
    finally:
        store.close()


def _print(erased: Erased) -> None:
    console.print(
        f"erased: {len(erased.reports)} reports' contacts, {len(erased.incidents)} "
        f"incidents' supporters or followers, {erased.messages} emails, "
        f"{erased.consents} consent records"
    )
