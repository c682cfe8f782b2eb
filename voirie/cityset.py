"""Several cities in one deployment (``VOIRIE_CITIES``): which city folders it names and
the path prefix each city is served under; ``VOIRIE_CITY_HOSTS``: the host names that serve
one city at their root.

The prefix is the city folder's name (``cities/paris`` is served under ``/paris/``): a
name the operator chose and can read in a URL, where the jurisdiction id (``paris.fr``)
is Open311's key, not a path segment. Names the dispatcher answers itself at the root
are refused, as are two cities with one prefix or one jurisdiction id.

A city may also have an address of its own (``paris=https://signalements.paris.fr``): a
request whose ``Host`` is that name is served as that city alone at the root, Open311
without ``jurisdiction_id`` included, and its absolute links are on that address (the
configured one, never the header's spelling). The mapping is the deployment's, not the
city's (a ``city.yaml`` stays valid wherever it is served), hence a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from voirie.city import CITY_FILE, City, load_city, resolve_city_dir
from voirie.errors import CityConfigError

SETTING = "VOIRIE_CITIES"
HOSTS_SETTING = "VOIRIE_CITY_HOSTS"
# A path segment that needs no escaping and no case folding.
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# First path segments the multi-city server answers at its root.
RESERVED = frozenset({"open311", "static", "healthz", "readyz", "metrics"})


@dataclass(frozen=True)
class CitySite:
    """One city of a deployment: the path prefix it is served under and its folder."""

    slug: str
    city: City


def city_folders(spec: str) -> list[Path]:
    """The city folders ``VOIRIE_CITIES`` names: comma-separated folders or shipped city
    names, or one directory whose sub-folders holding a ``city.yaml`` are the cities."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise CityConfigError([f"{SETTING}: empty; name the cities, e.g. paris,chicago"])
    only = Path(parts[0])
    if len(parts) == 1 and only.is_dir() and not (only / CITY_FILE).is_file():
        folders = sorted(p.absolute() for p in only.iterdir() if (p / CITY_FILE).is_file())
        if not folders:
            raise CityConfigError(
                [f"{SETTING}: {parts[0]!r} holds no city folder (a folder with {CITY_FILE})"]
            )
        return folders
    return [resolve_city_dir(part) for part in parts]


def load_sites(spec: str) -> list[CitySite]:
    """Every city ``VOIRIE_CITIES`` names, loaded, with its prefix; ``CityConfigError``
    listing every problem (a prefix not usable in a URL or reserved, a prefix or a
    jurisdiction id given twice, and each city's own problems)."""
    sites: list[CitySite] = []
    problems: list[str] = []
    for folder in city_folders(spec):
        slug = folder.name.lower()
        if not SLUG.fullmatch(slug) or slug in RESERVED:
            problems.append(
                f"{SETTING}: {str(folder)!r}: the folder name {folder.name!r} is the city's "
                "path prefix: use lower-case letters, digits, '-' or '_', and none of "
                + ", ".join(sorted(RESERVED))
            )
            continue
        sites.append(CitySite(slug, load_city(folder)))
    for what, values in (
        ("path prefix (folder name)", [site.slug for site in sites]),
        ("jurisdiction_id", [site.city.jurisdiction_id for site in sites]),
    ):
        if twice := _repeated(values):
            problems.append(f"{SETTING}: two cities share the {what} {', '.join(twice)}")
    if problems:
        raise CityConfigError(problems)
    return sites


@dataclass(frozen=True)
class CityHost:
    """A host name serving one city at its root: the city's prefix and the address its
    links are written on (scheme, host and port, without a path)."""

    slug: str
    url: str

    @property
    def hostname(self) -> str:
        """The name a request's ``Host`` header is compared with (lower case, no port)."""
        return urlsplit(self.url).hostname or ""


def load_hosts(spec: str, sites: list[CitySite]) -> list[CityHost]:
    """The addresses ``VOIRIE_CITY_HOSTS`` gives (``PREFIX=URL``, comma-separated, e.g.
    ``paris=https://signalements.paris.fr``); ``CityConfigError`` listing every problem
    (not ``PREFIX=URL``, a prefix no city has, not an http(s) URL of a host without path,
    query or fragment, a host name given twice)."""
    slugs = {site.slug for site in sites}
    hosts: list[CityHost] = []
    problems: list[str] = []
    for part in (part.strip() for part in spec.split(",")):
        if not part:
            continue
        slug, equals, url = (text.strip() for text in part.partition("="))
        if not equals or slug not in slugs:
            problems.append(
                f"{HOSTS_SETTING}: {part[:120]!r}: write PREFIX=URL with PREFIX one of "
                + ", ".join(sorted(slugs))
                + ", e.g. paris=https://signalements.paris.fr"
            )
            continue
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            problems.append(
                f"{HOSTS_SETTING}: {slug}: {url[:120]!r} is not the http(s) address of a "
                "host without path, e.g. https://signalements.paris.fr (the city is served "
                "at its root)"
            )
            continue
        hosts.append(CityHost(slug, f"{parts.scheme}://{parts.netloc.lower()}"))
    if twice := _repeated([host.hostname for host in hosts]):
        problems.append(f"{HOSTS_SETTING}: one host name for two cities: {', '.join(twice)}")
    if problems:
        raise CityConfigError(problems)
    return hosts


def _repeated(values: list[str]) -> list[str]:
    """The values given more than once, sorted (each once)."""
    return sorted({value for value in values if values.count(value) > 1})
