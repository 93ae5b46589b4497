"""``layerbridge reference``: a finished comparison against another system's published answers."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def reference_cmd(
    results: Path = typer.Argument(..., help="a finished comparison: runs/study/sib200 or its export"),
    answers: Path = typer.Option(
        ..., help="folder of published answers, <language>.tsv (e.g. sib-200/llm-results/output_gpt4)"
    ),
    name: str = typer.Option("gpt-4", help="the reference's name (names reference-<name>.json / .md)"),
) -> None:
    """Score a system's published zero-shot answers (SIB-200's GPT-4 / GPT-3.5) on the items each
    bridge was tested on; compare per language and group with a sentence-level paired bootstrap."""
    from layerbridge.experiments.reference import compare_with_reference

    path = compare_with_reference(results, answers, name)
    typer.echo(path.read_text(encoding="utf-8"))
    console.print(f"written: {path} and {path.with_suffix('.json')}")


def register(app: typer.Typer) -> None:
    app.command("reference")(reference_cmd)
