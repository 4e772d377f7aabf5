"""The benchmark's report: statistics over splits, the Markdown table, the JSON, the chart.

Per condition: mean ± std over splits of every metric, paired per-split differences vs
``baseline`` and (for DDSP conditions) vs the best non-DDSP condition with a 95 % bootstrap CI,
``gap_recovered`` = (cond − baseline) / (oracle − baseline) on minority recall, and recall per
species (as minority and as majority).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ddsp_augment.io import atomic_write

from .classifiers import gap_recovered, paired_bootstrap_ci
from .conditions import DDSP_CONDITIONS
from .protocol import METRICS, Split

__all__ = ["PRIMARY_METRIC", "bar_chart", "markdown_table", "nan_to_none", "summarise"]

# Minority recall is what balancing is for; it drives gap_recovered and "best non-DDSP".
PRIMARY_METRIC = "minority_recall"
N_BOOT = 10000


def nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return value


def _ci(diffs: np.ndarray, seed: int) -> dict[str, float]:
    mean, lo, hi = paired_bootstrap_ci(diffs, N_BOOT, seed)
    return {"mean": mean, "lo": lo, "hi": hi}


def summarise(
    results: dict[str, list[dict[str, Any]]], splits: Sequence[Split], classes: list[str]
) -> dict[str, dict[str, Any]]:
    """Per-condition means, stds, paired CIs, gap recovered and per-species recall."""
    table = {
        c: {m: np.array([r[m] for r in rows], np.float64) for m in METRICS}
        for c, rows in results.items()
    }
    means = {c: {m: float(np.nanmean(v)) for m, v in t.items()} for c, t in table.items()}
    non_ddsp = [c for c in results if c not in DDSP_CONDITIONS and c != "oracle"]
    best = max(non_ddsp, key=lambda c: means[c][PRIMARY_METRIC]) if non_ddsp else None
    out = {}
    for c, rows in results.items():
        entry: dict[str, Any] = {
            m: {"mean": means[c][m], "std": float(np.nanstd(table[c][m]))} for m in METRICS
        }
        if "baseline" in results and "oracle" in results:
            entry["gap_recovered"] = gap_recovered(
                means[c][PRIMARY_METRIC],
                means["baseline"][PRIMARY_METRIC],
                means["oracle"][PRIMARY_METRIC],
            )
        if "baseline" in results and c != "baseline":
            entry["vs_baseline"] = {
                m: _ci(table[c][m] - table["baseline"][m], i) for i, m in enumerate(METRICS)
            }
        if c in DDSP_CONDITIONS and best is not None:
            entry["vs_best_non_ddsp"] = {
                "reference": best,
                **{m: _ci(table[c][m] - table[best][m], i) for i, m in enumerate(METRICS)},
            }
        recall = np.array([r["per_class_recall"] for r in rows])  # [splits, classes]
        is_minority = np.array([[k in s.minority for k in range(len(classes))] for s in splits])
        entry["per_species"] = {
            name: {
                "recall": _nanmean(recall[:, k]),
                "recall_as_minority": _nanmean(recall[is_minority[:, k], k]),
                "recall_as_majority": _nanmean(recall[~is_minority[:, k], k]),
            }
            for k, name in enumerate(classes)
        }
        entry["per_split"] = [
            {
                key: r[key]
                for key in ("seed", "fold", "n_train", "n_test", "ddsp_model_failures", *METRICS)
            }
            for r in rows
        ]
        if c in DDSP_CONDITIONS:
            entry["ddsp_model_failures"] = sum(len(r["ddsp_model_failures"]) for r in rows)
        entry["seconds"] = float(sum(r["seconds"] for r in rows))
        out[c] = entry
    return out


def _nanmean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def markdown_table(summary: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    def cell(entry: dict[str, float]) -> str:
        return f"{entry['mean']:.3f} ± {entry['std']:.3f}"

    def ci(entry: dict[str, float] | None) -> str:
        if not entry or entry["mean"] is None or not math.isfinite(entry["mean"]):
            return ""
        return f"{entry['mean']:+.3f} [{entry['lo']:+.3f}, {entry['hi']:+.3f}]"

    protocol = (
        f"{len(settings['seeds'])} seed(s) × {settings['folds']} recordist-grouped fold(s)"
        if settings["test_root"] is None
        else f"{len(settings['seeds'])} seed(s), tested on `{settings['test_root']}`"
    )
    lines = [
        (
            "**Validation run** (scored on cut minority recordings, not the test folds). "
            if settings["scored_on"] != "test folds"
            else ""
        )
        + f"Classifier gain on `{settings['data_root_name']}` ({settings['n_species']} species, "
        f"{settings['n_clips']} clips): {settings['classifier']} classifier, "
        f"{protocol} = {settings['n_splits']} splits, minority = {settings['minority']} "
        f"cut to k = {settings['k']} training recordings; mean ± std over splits; "
        "Δ = paired difference in minority recall with 95 % bootstrap CI.",
        "",
        "| condition | macro-F1 | balanced acc. | minority recall | majority recall "
        "| Δ min. recall vs baseline | gap recovered |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, entry in summary.items():
        gap = entry.get("gap_recovered")
        gap_text = f"{gap:.2f}" if gap is not None and math.isfinite(gap) else ""
        delta = ci(entry.get("vs_baseline", {}).get(PRIMARY_METRIC))
        lines.append(
            f"| {c} | {cell(entry['macro_f1'])} | {cell(entry['balanced_accuracy'])} "
            f"| {cell(entry['minority_recall'])} | {cell(entry['majority_recall'])} "
            f"| {delta} | {gap_text} |"
        )
    for c, entry in summary.items():
        if "vs_best_non_ddsp" in entry:
            versus = entry["vs_best_non_ddsp"]
            lines.append(
                f"\n{c} vs {versus['reference']} (best non-DDSP): Δ minority recall "
                f"{ci(versus[PRIMARY_METRIC])}, Δ macro-F1 {ci(versus['macro_f1'])}"
            )
    failed = {
        species
        for entry in summary.values()
        for row in entry["per_split"]
        for species in row.get("ddsp_model_failures") or {}
    }
    if failed:
        n = max(entry.get("ddsp_model_failures", 0) for entry in summary.values())
        lines.append(
            f"\n{n} species model(s) could not be trained (collapsed) and their classes got no "
            f"DDSP songs in that split: {', '.join(sorted(failed))}."
        )
    return "\n".join(lines) + "\n"


def bar_chart(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = list(summary)
    width = 0.8 / len(conditions)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(METRICS))
    for i, c in enumerate(conditions):
        heights = [summary[c][m]["mean"] for m in METRICS]
        errors = [summary[c][m]["std"] for m in METRICS]
        ax.bar(
            x + (i - (len(conditions) - 1) / 2) * width,
            heights,
            width,
            yerr=errors,
            capsize=3,
            label=c,
        )
    ax.set_xticks(x, [m.replace("_", " ") for m in METRICS])
    top = max(summary[c][m]["mean"] + summary[c][m]["std"] for c in conditions for m in METRICS)
    ax.set_ylim(0, min(1.0, 1.2 * top) if math.isfinite(top) else 1.0)
    ax.set_ylabel("score (mean ± std over splits)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(conditions), 6), loc="upper right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
