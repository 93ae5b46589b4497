"""matplotlib on the file-only Agg backend, and atomic PNG writing — shared by every plot."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    from layerbridge.io import atomic_file

    with atomic_file(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
