"""What every ``voirie`` command shares: the console, the ``--city`` option, the store
named by ``VOIRIE_DATABASE_URL``, and one clear error line instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.console import Console

from voirie.errors import VoirieError
from voirie.settings import StoreSettings
from voirie.store import Store, open_store

T = TypeVar("T")

console = Console(stderr=True)
city_option = click.option(
    "--city",
    envvar="VOIRIE_CITY",
    default="paris",
    show_default=True,
    help="City folder (with its city.yaml), or the name of a city shipped with voirie.",
)


def fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Show voirie errors as one clear message and a non-zero exit code, not a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VoirieError as exc:
            # soft_wrap: one line whatever the terminal width, so it can be grepped.
            console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
            sys.exit(2)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def configured_store() -> Store:
    """The configured store, upgraded to the current schema."""
    store = open_store(StoreSettings())
    store.upgrade()
    return store


def store_upgraded_while(load: Callable[[Store], T]) -> tuple[Store, T]:
    """``configured_store``, its migrations applied on a thread while ``load`` builds what
    needs the store object but none of its rows (the city, its GIS, a ``Pipeline``).

    On a new PostGIS database the server spends about half a second creating the schema
    (``CREATE EXTENSION postgis`` most of it) with the client idle, and a city's GIS takes
    about as long to load: an import into a new database starts that much sooner. Both
    are waited for before returning; the store is closed if either fails, and the
    migrations' error comes first (a store that cannot be upgraded is the cause)."""
    store = open_store(StoreSettings())
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="voirie-upgrade") as upgrader:
            upgrading = upgrader.submit(store.upgrade)
            try:
                loaded = load(store)
            finally:
                upgrading.result()
    except BaseException:
        store.close()
        raise
    return store, loaded


@contextmanager
def store_opened() -> Iterator[Store]:
    """``configured_store`` for the length of a block, closed afterwards."""
    store = configured_store()
    try:
        yield store
    finally:
        store.close()
