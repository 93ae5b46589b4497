"""Loading task data from the Hugging Face hub (for users who are online).

Only :func:`fetch_records` touches the network (through the optional ``datasets``
package); every task converts the records it returns with the same code that reads the
local layout, so the conversion is tested offline on fixtures in the hub's record format.
"""

from __future__ import annotations

from layerbridge.errors import DataError


def fetch_records(dataset_id: str, config: str | None, split: str) -> list[dict]:
    """Rows of ``dataset_id`` (``config``, ``split``) as plain dicts."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"loading {dataset_id} from the Hugging Face hub needs the `datasets` package "
            "(pip install 'layerbridge[hub]'); offline, point LAYERBRIDGE_DATA at a local copy"
        ) from None
    try:
        rows = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as err:  # network, missing config/split, …: report, don't crash
        raise DataError(
            f"cannot load {dataset_id} ({config or 'default'}, {split}) from the hub: {err}"
        ) from None
    return [dict(row) for row in rows]
