"""The web and publishing layers open no transaction: every write is a use case of
``voirie.services`` (or ``voirie.notify``) that opens its own, so ``api/`` and ``maps/``
only parse, authorise and render."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _transaction_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call something's ``.transaction(...)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "transaction"
    ]


@pytest.mark.parametrize("layer", ["api", "maps"])
def test_the_layer_never_opens_a_transaction(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files
    found = {
        str(path.relative_to(ROOT)): lines for path in files if (lines := _transaction_calls(path))
    }
    assert found == {}
