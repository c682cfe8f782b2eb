"""Citizens' personal data on request and after retention (issue 17 item 5).

``purge`` erases the contact data of the incidents closed ``privacy.retention_days`` ago
(city.yaml); the worker runs the same purge every hour. ``erase`` erases everything kept
about one email address, on its owner's request. What is erased and how:
:mod:`voirie.store.privacy`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from voirie.city import City
from voirie.errors import InvalidInput, VoirieError
from voirie.store.base import Store
from voirie.store.privacy import Erased, erase_email, purge_expired

ERASE_REASON = "erased on request of the person concerned"


class NoRetention(VoirieError):
    """The city keeps contact data without a limit: there is nothing to purge."""


def purge(store: Store, city: City, now: datetime | None = None) -> Erased:
    """Erase the personal data of incidents closed longer ago than the retention."""
    erased = purge_expired(store, city, now)
    if erased is None:
        raise NoRetention(
            f"privacy.retention_days: not set in {city.folder / 'city.yaml'}: "
            "contact data are kept until erased on request",
            field="privacy.retention_days",
        )
    return erased


def erase(store: Store, city: City, email: str, now: datetime | None = None) -> Erased:
    """Erase everything kept about ``email`` (any case)."""
    address = email.strip()
    if "@" not in address or len(address) > 320 or any(c.isspace() for c in address):
        raise InvalidInput(f"email: {email[:80]!r} is not an email address", field="email")
    at = now or datetime.now(UTC)
    with store.transaction(city.jurisdiction_id) as uow:
        return erase_email(uow, address, ERASE_REASON, at)
