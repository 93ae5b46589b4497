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
    return "\n".join(lines + _profile_lines(report)) + "\n"


def _profile_lines(report: dict[str, Any]) -> list[str]:
    """One row per profiled step (``bench --profile``): how busy the accelerator was, and the
    operators with the most own time in our step."""
    rows = [
        (case["shape"], t["batch"], design, t[design]["profile"])
        for case in report["cases"]
        for t in case["train"]
        for design in ("optimised", "naive")
        if t.get(design, {}).get("profile")
    ]
    if not rows:
        return []
    lines = [
        "",
        "One profiled training step (torch.profiler): operator calls, kernel launches, the step's wall "
        "time and the kernels' own time on the accelerator.",
        "",
        "| shape | batch | design | ATen ops | kernel launches | wall ms | device ms | device busy |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for shape, batch, design, p in rows:
        busy = f"{100 * p['device_ms'] / p['wall_ms']:.0f}%" if p["device_ms"] else "–"
        lines.append(
            f"| {shape} | {batch} | {design} | {p['ops']} | {p['launches']} | {p['wall_ms']:.1f} | "
            f"{p['device_ms']:.1f} | {busy} |"
        )
    for shape, batch, design, p in rows:
        if design == "optimised":
            top = ", ".join(f"`{r['op']}` x{r['calls']}" for r in p["top"][:5])
            lines.append(f"\nTop operators, ours ({shape}, batch {batch}): {top}.")
    return lines
