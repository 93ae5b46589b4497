"""``layerbridge lm-eval``: EleutherAI's lm-evaluation-harness with the ``layerbridge`` model registered."""

from __future__ import annotations

import sys

import typer

from layerbridge.errors import ConfigError


def lm_eval_cmd(ctx: typer.Context) -> None:
    """Run lm-evaluation-harness; every argument is lm-eval's own (see `lm_eval --help`).

    Example: `layerbridge lm-eval run --model layerbridge --model_args bridge=runs/x/best,batch_size=16
    --tasks belebele_sin_Sinh --device cpu`
    """
    try:
        from lm_eval.__main__ import cli_evaluate

        import layerbridge.harness  # noqa: F401  (registers the "layerbridge" model)
    except ImportError as err:
        raise ConfigError(
            f"lm-evaluation-harness is not installed ({err.name}); pip install 'layerbridge[harness]'"
        ) from None
    sys.argv = ["lm_eval", *ctx.args]
    cli_evaluate()


def register(app: typer.Typer) -> None:
    app.command(
        "lm-eval",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )(lm_eval_cmd)
