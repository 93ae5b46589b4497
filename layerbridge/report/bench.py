"""A benchmark report (``layerbridge bench``): its Markdown tables."""

from __future__ import annotations

from typing import Any


def bench_markdown(report: dict[str, Any]) -> str:
    """Training (ours vs naive) and evaluation throughput tables, with the machine on top."""
    dev = report["device"]
    lines = [
        f"**{dev['name']}** ({dev['type']}, {dev['torch_threads']} threads), torch {dev['torch']}, "
        f"transformers {dev['transformers']}, precision `{report['precision']}` "
        f"(computes in {report.get('compute_precision', report['precision'])}), "
        f"{'torch.compile' if report.get('compiled') else 'eager'}; MFU peak: "
        f"{report['peak_flops'] / 1e12:.2f} TFLOP/s ({report['peak_source']}).",
        f"CPU flags: {', '.join(dev.get('cpu_flags') or []) or 'none reported'}.",
        "",
        "| shape | batch | ours ms/step | ours ex/s | ours tok/s | ours MFU | naive ms/step | naive ex/s "
        "| speed-up | peak mem ours / naive (GiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        for t in case["train"]:
            o, n = t["optimised"], t.get("naive")
            mfu = f"{100 * o['mfu']:.1f}%" if o["mfu"] is not None else "–"
            naive_cols = (
                (
                    f"{n['step_ms']:.0f} | {n['examples_per_s']:.1f} | **{t['speedup']:.2f}x** | "
                    f"{o['peak_memory_gib']:.2f} / {n['peak_memory_gib']:.2f}"
                )
                if n
                else "– | – | – | –"
            )
            lines.append(
                f"| {case['shape']} | {t['batch']} | {o['step_ms']:.0f} | {o['examples_per_s']:.1f} | "
                f"{o['tokens_per_s']:.0f} | {mfu} | {naive_cols} |"
            )
    lines += [
        "",
        "| shape | label scoring ex/s (ours) | naive ex/s | speed-up | generation ex/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        e = case["eval"]
        lines.append(
            f"| {case['shape']} | {e['label_scoring_examples_per_s']:.1f} | "
            f"{e.get('naive_label_scoring_examples_per_s', '–')} | {e.get('label_scoring_speedup', '–')}x | "
            f"{e['generation_examples_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"
