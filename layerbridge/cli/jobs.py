"""Job commands (train, eval, predict, compare, quickstart) — registered by ``main``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:  # filled in by the training issue
    return None
