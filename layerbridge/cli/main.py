"""Entry point of the ``layerbridge`` command.

User errors (bad arguments, bad data, bad checkpoints) end with one line on stderr and a
non-zero exit code, never a traceback; set ``LAYERBRIDGE_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from layerbridge.cli import models
from layerbridge.errors import LayerbridgeError

app = typer.Typer(
    name="layerbridge",
    help="Bridge a frozen multilingual encoder into a frozen LLM; train on English, classify any language.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")


def _register_commands() -> None:
    """Attach the job commands (imported lazily so ``--help`` stays fast)."""
    from layerbridge.cli import harness, jobs, reference

    jobs.register(app)
    harness.register(app)
    reference.register(app)


def main(argv: list[str] | None = None) -> int:
    _register_commands()
    debug = os.environ.get("LAYERBRIDGE_DEBUG") == "1"
    try:
        # standalone mode: typer/click report usage errors themselves (exit code 2) and
        # always end with SystemExit; our own errors propagate to the handler below.
        app(args=argv, prog_name="layerbridge", standalone_mode=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except (LayerbridgeError, FileNotFoundError, PermissionError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, an unwritable folder, …: nothing is left half-written
        if debug:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
