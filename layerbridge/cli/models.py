"""``layerbridge models list|prepare``: the built-in offline models."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from layerbridge.builtin import BUILTIN_MODELS, is_prepared, model_dir, prepare
from layerbridge.builtin.cache import cache_root
from layerbridge.errors import ModelError

app = typer.Typer(help="The built-in pretrained models (installed from PyPI wheels, no model hub).")
console = Console(stderr=True)


def _wheel_status(name: str) -> str:
    problems = []
    for source in BUILTIN_MODELS[name].sources.values():
        try:
            source.locate()
        except ModelError:
            problems.append(f"missing {source.distribution}")
    return ", ".join(problems) or "installed"


@app.command("list")
def list_models() -> None:
    """Show the built-in models, whether each is prepared, and where."""
    table = Table(title=f"built-in models (cache: {cache_root()})")
    for column in ("name", "role", "upstream model", "wheels", "prepared", "path"):
        table.add_column(column)
    for name, model in BUILTIN_MODELS.items():
        ready = is_prepared(name)
        table.add_row(
            name,
            model.role,
            model.hf_id,
            _wheel_status(name),
            "yes" if ready else "no",
            str(model_dir(name)) if ready else "-",
        )
    Console().print(table)


@app.command("prepare")
def prepare_models(
    name: str = typer.Argument(None, help="e5-small or smollm2-135m (default: both)"),
    force: bool = typer.Option(False, "--force", help="convert again even if already prepared"),
) -> None:
    """Convert built-in models into the cache (idempotent; verifies the wheel files' SHA-256)."""
    names = [name] if name else list(BUILTIN_MODELS)
    for item in names:
        with console.status(f"preparing {item}…"):
            path = prepare(item, force=force, log=console.log)
        console.print(f"[green]✓[/green] {item}: {path}")
