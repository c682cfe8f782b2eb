"""The ``voirie`` group imports a command's module only when that command runs: every
command is listed and found, and ``voirie import`` starts without the web server, the
maps or the other commands' modules (seconds of every import's fixed cost). Run as the
console script, the process ends without tearing the interpreter down, with its exit
handlers run, its output flushed and its exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
from clirunner import run_voirie

import voirie
from voirie.cli import COMMANDS, main

NOT_FOR_IMPORT = (
    "fastapi",
    "uvicorn",
    "jinja2",
    "pyogrio",
    "voirie.api",
    "voirie.maps.export",
    "voirie.cli.server",
    "voirie.cli.admin",
    "voirie.cli.rules",
    "voirie.cli.export",
)


def test_every_command_is_listed_and_found_under_its_name() -> None:
    with click.Context(main) as ctx:
        assert main.list_commands(ctx) == sorted(COMMANDS)
        for name in COMMANDS:
            command = main.get_command(ctx, name)
            assert isinstance(command, click.Command)
            assert command.name == name
        assert main.get_command(ctx, "no-such-command") is None


def test_voirie_import_loads_only_the_import_modules() -> None:
    """In a fresh interpreter, as the console script starts: the import command's help
    (its module loaded, nothing run) leaves the other commands' modules unloaded."""
    script = (
        "import sys\n"
        "from voirie.cli import main\n"
        "main(['import', '--help'], standalone_mode=False)\n"
        f"print([m for m in {NOT_FOR_IMPORT!r} if m in sys.modules])\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "Import reports from PATH" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_a_command_whose_module_is_loaded_when_it_runs_works(tmp_path: Path) -> None:
    """``voirie export`` (its own module, loaded when it runs) writes the layer."""
    run = run_voirie(tmp_path, "export", "incidents", "--format", "csv", "-o", "out.csv")
    assert run.returncode == 0, run.stderr
    assert "wrote 0 incidents" in run.stderr
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").startswith("incident_id")


# A process as the console script runs it (``main()``, the arguments from the command
# line), with an object that prints when freed and an exit handler that prints.
_CONSOLE = """
import atexit, sys
class Torn:
    def __del__(self):
        print("torn down", flush=True)
left = Torn()
atexit.register(print, "exit handlers ran")
from voirie.cli import main
sys.argv = ["voirie", *sys.argv[1:]]
main()
"""


def test_the_console_script_ends_without_tearing_the_interpreter_down() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _CONSOLE, "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0
    assert run.stdout.splitlines() == [f"voirie, version {voirie.__version__}", "exit handlers ran"]


def test_the_console_script_keeps_its_exit_status() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _CONSOLE, "no-such-command"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "No such command 'no-such-command'" in run.stderr
    assert run.stdout.splitlines() == ["exit handlers ran"]
