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

__all__ = ["PRIMARY_METRIC", "chart", "markdown_report", "nan_to_none", "summarise"]

# Minority recall is what balancing is for; it drives gap_recovered and "best non-DDSP".
PRIMARY_METRIC = "minority_recall"
N_BOOT = 10000
SCENE_CONTROL = "classic+scene"


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
        if c in DDSP_CONDITIONS and SCENE_CONTROL in results:
            # The control with the same scene: what the synthesis itself adds.
            entry["vs_classic_scene"] = {
                m: _ci(table[c][m] - table[SCENE_CONTROL][m], i) for i, m in enumerate(METRICS)
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
        gates = [r["gate"] for r in rows if r.get("gate")]
        if gates:
            draws = sum(g["draws"] for g in gates)
            entry["gate"] = {
                "items": sum(g["items"] for g in gates),
                "draws": draws,
                "acceptance_rate": sum(g["accepted"] for g in gates) / draws if draws else None,
            }
        entry["seconds"] = float(sum(r["seconds"] for r in rows))
        out[c] = entry
    return out


def _nanmean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _cell(entry: dict[str, float]) -> str:
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def _ci_text(entry: dict[str, float] | None) -> str:
    if not entry or entry["mean"] is None or not math.isfinite(entry["mean"]):
        return ""
    return f"{entry['mean']:+.3f} [{entry['lo']:+.3f}, {entry['hi']:+.3f}]"


def _run_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    """One run's table, its comparisons with the non-DDSP conditions and model failures."""
    lines = [
        "| condition | macro-F1 | balanced acc. | minority recall | majority recall "
        "| Δ min. recall vs baseline | gap recovered |",
        "|---|---|---|---|---|---|---|",
    ]
    for c, entry in summary.items():
        gap = entry.get("gap_recovered")
        gap_text = f"{gap:.2f}" if gap is not None and math.isfinite(gap) else ""
        delta = _ci_text(entry.get("vs_baseline", {}).get(PRIMARY_METRIC))
        lines.append(
            f"| {c} | {_cell(entry['macro_f1'])} | {_cell(entry['balanced_accuracy'])} "
            f"| {_cell(entry['minority_recall'])} | {_cell(entry['majority_recall'])} "
            f"| {delta} | {gap_text} |"
        )
    for c, entry in summary.items():
        references = []
        if "vs_best_non_ddsp" in entry:
            references.append(
                (entry["vs_best_non_ddsp"]["reference"] + " (best non-DDSP)", "vs_best_non_ddsp")
            )
        if (
            "vs_classic_scene" in entry
            and entry.get("vs_best_non_ddsp", {}).get("reference") != SCENE_CONTROL
        ):
            references.append((SCENE_CONTROL + " (same scene)", "vs_classic_scene"))
        for name, key in references:
            versus = entry[key]
            lines.append(
                f"\n{c} vs {name}: Δ minority recall {_ci_text(versus[PRIMARY_METRIC])}, "
                f"Δ majority recall {_ci_text(versus['majority_recall'])}, "
                f"Δ macro-F1 {_ci_text(versus['macro_f1'])}"
            )
    for c, entry in summary.items():
        if entry.get("gate") and entry["gate"]["acceptance_rate"] is not None:
            gate = entry["gate"]
            lines.append(
                f"\n{c}: the quality gate accepted {gate['acceptance_rate']:.0%} of "
                f"{gate['draws']} drawn songs ({gate['items']} items)."
            )
    failed = sorted(
        {
            species
            for entry in summary.values()
            for row in entry["per_split"]
            for species in row.get("ddsp_model_failures") or {}
        }
    )
    if failed:
        n = max(entry.get("ddsp_model_failures", 0) for entry in summary.values())
        lines.append(
            f"\n{n} species model(s) could not be trained (collapsed) and their classes got no "
            f"DDSP songs in that split: {', '.join(failed)}."
        )
    return lines


def markdown_report(runs: Sequence[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The Markdown report: the protocol, one table per (classifier, k) run, and with several
    runs the minority-recall curve over them."""
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
        f"{settings['n_clips']} clips): {protocol} = {settings['n_splits']} splits per run, "
        f"minority = {settings['minority']} cut to k training recordings; mean ± std over "
        "splits; Δ = paired difference with 95 % bootstrap CI.",
    ]
    for run in runs:
        lines += ["", f"### {run.get('label', run['classifier'])} classifier, k = {run['k']}", ""]
        lines += _run_table(run["conditions"])
    if len(runs) > 1:
        conditions = list(runs[0]["conditions"])
        lines += [
            "",
            "### Minority recall by run (Δ vs baseline)",
            "",
            "| condition | "
            + " | ".join(f"{r.get('label', r['classifier'])}, k={r['k']}" for r in runs)
            + " |",
            "|---|" + "---|" * len(runs),
        ]
        for c in conditions:
            cells = []
            for run in runs:
                entry = run["conditions"][c]
                delta = entry.get("vs_baseline", {}).get(PRIMARY_METRIC)
                cells.append(
                    f"{entry[PRIMARY_METRIC]['mean']:.3f}"
                    + (f" ({delta['mean']:+.3f})" if delta and delta["mean"] is not None else "")
                )
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def chart(runs: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """PNG: one panel per (classifier, k) run, minority and majority recall per condition
    (mean ± std over splits)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("minority_recall", "majority_recall")
    fig, axes = plt.subplots(
        1, len(runs), figsize=(4.5 * len(runs), 4.2), sharey=True, squeeze=False
    )
    for ax, run in zip(axes[0], runs, strict=True):
        summary = run["conditions"]
        conditions = list(summary)
        x = np.arange(len(conditions))
        for i, metric in enumerate(metrics):
            ax.bar(
                x + (i - 0.5) * 0.4,
                [summary[c][metric]["mean"] for c in conditions],
                0.4,
                yerr=[summary[c][metric]["std"] for c in conditions],
                capsize=2,
                label=metric.replace("_", " "),
            )
        ax.set_xticks(x, conditions, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{run.get('label', run['classifier'])}, k = {run['k']}", fontsize=10)
        ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("recall (mean ± std over splits)")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
