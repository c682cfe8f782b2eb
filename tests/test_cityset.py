"""``VOIRIE_CITIES``: which city folders a deployment serves, and each one's path prefix;
``VOIRIE_CITY_HOSTS``: the host names serving one city at their root."""

from __future__ import annotations

from pathlib import Path

import pytest

from voirie.cityset import CityHost, load_hosts, load_sites
from voirie.cli.server import _outbox_settings
from voirie.errors import CityConfigError
from voirie.settings import CitiesSettings

CITIES = Path(__file__).parents[1] / "cities"


def test_names_of_shipped_cities_give_their_folders_and_prefixes() -> None:
    sites = load_sites(" paris , chicago ")
    assert [(s.slug, s.city.jurisdiction_id) for s in sites] == [
        ("paris", "paris.fr"),
        ("chicago", "chicago.gov"),
    ]


def test_a_directory_of_city_folders_serves_each_under_its_folder_name(tmp_path: Path) -> None:
    (tmp_path / "ville-de-paris").symlink_to(CITIES / "paris")
    (tmp_path / "chicago").symlink_to(CITIES / "chicago")
    (tmp_path / "notes").mkdir()  # no city.yaml: not a city
    sites = load_sites(str(tmp_path))
    assert [(s.slug, s.city.config.name) for s in sites] == [
        ("chicago", "Chicago"),
        ("ville-de-paris", "Paris"),
    ]


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOIRIE_CITIES", "paris,chicago")
    assert CitiesSettings().cities == "paris,chicago"
    monkeypatch.delenv("VOIRIE_CITIES")
    assert CitiesSettings().cities is None


@pytest.mark.parametrize(
    ("folders", "problem"),
    [
        ({"static": "paris", "chicago": "chicago"}, "the folder name 'static' is the city's"),
        ({"Paris 1": "paris", "chicago": "chicago"}, "the folder name 'Paris 1' is the city's"),
        ({"paris": "paris", "paris-bis": "paris"}, "share the jurisdiction_id paris.fr"),
    ],
)
def test_unusable_prefixes_and_a_jurisdiction_twice_are_refused(
    tmp_path: Path, folders: dict[str, str], problem: str
) -> None:
    for name, city in folders.items():
        (tmp_path / name).symlink_to(CITIES / city)
    with pytest.raises(CityConfigError, match="VOIRIE_CITIES") as refused:
        load_sites(str(tmp_path))
    assert problem in refused.value.message


def test_one_prefix_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CityConfigError, match="share the path prefix"):
        load_sites(f"paris,{CITIES / 'paris'}")


@pytest.mark.parametrize("spec", ["", " , "])
def test_an_empty_list_is_refused(spec: str) -> None:
    with pytest.raises(CityConfigError, match="VOIRIE_CITIES: empty"):
        load_sites(spec)


def test_a_directory_without_cities_and_an_unknown_name_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CityConfigError, match="holds no city folder"):
        load_sites(str(tmp_path))
    with pytest.raises(CityConfigError, match="no shipped city named 'atlantis'"):
        load_sites("paris,atlantis")


def test_a_citys_outbox_links_under_its_prefix_when_served_among_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOIRIE_PUBLIC_URL", "https://voirie.example.org/")
    monkeypatch.delenv("VOIRIE_CITIES", raising=False)
    assert _outbox_settings("chicago.gov").public_url == "https://voirie.example.org/"
    monkeypatch.setenv("VOIRIE_CITIES", "paris,chicago")
    assert _outbox_settings("chicago.gov").public_url == "https://voirie.example.org/chicago"
    assert _outbox_settings("paris.fr").public_url == "https://voirie.example.org/paris"
    monkeypatch.setenv("VOIRIE_CITIES", "chicago")  # one city: at the root
    assert _outbox_settings("chicago.gov").public_url == "https://voirie.example.org/"


def test_city_hosts_map_a_host_name_to_a_city() -> None:
    sites = load_sites("paris,chicago")
    hosts = load_hosts(
        " paris = https://Signalements.Paris.example/ , chicago=http://311.chicago.example:8080",
        sites,
    )
    assert hosts == [
        CityHost("paris", "https://signalements.paris.example"),
        CityHost("chicago", "http://311.chicago.example:8080"),
    ]
    assert [host.hostname for host in hosts] == [
        "signalements.paris.example",
        "311.chicago.example",
    ]
    assert load_hosts("", sites) == []


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("signalements.paris.example", "PREFIX=URL"),
        ("lyon=https://lyon.example", "PREFIX=URL with PREFIX one of chicago, paris"),
        ("paris=signalements.paris.example", "is not the http(s) address"),
        ("paris=https://example.org/paris", "is not the http(s) address"),
        ("paris=ftp://paris.example", "is not the http(s) address"),
        ("paris=https://one.example,chicago=https://ONE.example:444", "one host name for two"),
    ],
)
def test_unusable_city_hosts_are_refused_naming_the_setting(spec: str, says: str) -> None:
    with pytest.raises(CityConfigError) as refused:
        load_hosts(spec, load_sites("paris,chicago"))
    assert "VOIRIE_CITY_HOSTS" in str(refused.value)
    assert says in str(refused.value)
