"""The ``layerbridge`` command line (typer)."""
