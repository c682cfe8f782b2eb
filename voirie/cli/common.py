"""What every ``voirie`` command shares: the console, the ``--city`` option, the store
named by ``VOIRIE_DATABASE_URL``, and one clear error line instead of a traceback.

The store's modules (pandas, psycopg, the settings) are imported when a command opens
it, not with the command's module: ``voirie import`` starts the migrations of its store
before it imports the rest of its modules (``store_upgraded_while``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from voirie.errors import VoirieError

if TYPE_CHECKING:
    from voirie.store import Store

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
    """The configured store, upgraded to the current schema (closed if it cannot be)."""
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    store = open_store(StoreSettings())
    try:
        store.upgrade()
    except BaseException:
        store.close()
        raise
    return store


def store_upgraded_while(load: Callable[[], T]) -> tuple[Store, T]:
    """``configured_store``, migrated on a thread while ``load`` imports and builds what
    needs neither the store nor its rows (the command's other modules, the city, its GIS).

    On a new PostGIS database the server spends one to two seconds creating the schema
    (``CREATE EXTENSION postgis`` most of it) with the client idle, about as long as the
    client takes to import its modules and load a city's GIS: the store's own modules are
    imported first, so that the migrations start before the others are, and an import
    into a new database starts that much sooner. Both are waited for before returning;
    the store is closed if either fails, and the migrations' error comes first (a store
    that cannot be upgraded is the cause)."""
    from voirie.settings import StoreSettings
    from voirie.store import open_store

    store = open_store(StoreSettings())
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="voirie-upgrade") as upgrader:
            upgrading = upgrader.submit(store.upgrade)
            try:
                loaded = load()
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
