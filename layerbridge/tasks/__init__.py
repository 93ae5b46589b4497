"""Tasks: prompts, label strings, English training data and multilingual test sets.

=============  ===========================================================================
name           what
=============  ===========================================================================
xnli           3-way NLI; English MultiNLI training; 15 test languages
indicxnli      XNLI in 11 Indic languages (same English training)
sinhala-news   5 news categories; English BBC training; Sinhala (and English) test
marc           Amazon reviews, 1-5 stars; English training; 6 test languages
sib200         SIB-200 topics (7 classes); English training; 180+ parallel test languages
custom         your own CSV / TSV / JSONL files, declared in YAML or JSON
=============  ===========================================================================
"""

from layerbridge.tasks import custom, marc, news, nli, sib200  # noqa: F401  (register the tasks)
from layerbridge.tasks.base import SPLITS, TASKS, Task, get_task

__all__ = ["SPLITS", "TASKS", "Task", "get_task"]
