"""Turning examples into encoder token ids without cutting off the template.

Plain right-truncation of a long prompt would drop its end, which is exactly the part that
tells the model what to do ("… Label: "). :func:`encode_prompt` instead shortens the longest
text field until the whole prompt fits ``max_length`` tokens.
"""

from __future__ import annotations


def encode_prompt(template: str, fields: dict[str, str], tokenizer, max_length: int) -> list[int]:
    """Token ids (with the tokenizer's special tokens) of the filled template, at most ``max_length``."""
    fields = dict(fields)
    ids = tokenizer(template.format_map(fields), add_special_tokens=True)["input_ids"]
    for _ in range(8):
        excess = len(ids) - max_length
        if excess <= 0:
            return ids
        longest = max(fields, key=lambda k: len(fields[k]))
        text = fields[longest]
        n_tokens = max(1, len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        keep_chars = int(len(text) * max(0.0, 1 - (excess + 1) / n_tokens))
        if keep_chars >= len(text):
            keep_chars = len(text) - 1
        fields[longest] = text[: max(keep_chars, 0)].rstrip()
        ids = tokenizer(template.format_map(fields), add_special_tokens=True)["input_ids"]
    return ids[:max_length]  # pathological templates: fall back to hard truncation
