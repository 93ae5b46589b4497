"""Time loading the prepared built-in checkpoints (issue: < 2 s on the 2-core CPU machine).

Run: .venv/bin/python benchmarks/model_load.py   (after `layerbridge models prepare`)
Each load runs in a fresh process; the import of torch/transformers is timed separately.
"""

from __future__ import annotations

import json
import subprocess
import sys

SNIPPET = r"""
import time, json
t0 = time.perf_counter()
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging
logging.disable_progress_bar(); logging.set_verbosity_error()
from layerbridge.builtin import model_dir
t1 = time.perf_counter()
name = "{name}"
path = model_dir(name)
if name == "smollm2-135m":
    AutoModelForCausalLM.from_pretrained(path)
else:
    AutoModel.from_pretrained(path, add_pooling_layer=False)
t2 = time.perf_counter()
AutoTokenizer.from_pretrained(path)
t3 = time.perf_counter()
print(json.dumps({{"model": name, "import_s": round(t1 - t0, 2), "weights_s": round(t2 - t1, 2),
                   "tokenizer_s": round(t3 - t2, 2), "load_s": round(t3 - t1, 2)}}))
"""


def main() -> None:
    rows = []
    for name in ("smollm2-135m", "e5-small"):
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", SNIPPET.format(name=name)], capture_output=True, text=True, check=True
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
