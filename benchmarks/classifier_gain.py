"""What does class balancing do for a bird-species classifier? Honest, split-by-recordist numbers.

Every condition (baseline, oversample, classic, classic+scene, ddsp, ddsp+classic, ddsp+gate,
oracle: see ``classifier_gain/conditions.py``) trains a fresh classifier on the same
recordist-grouped splits,
in which half of the species (drawn per seed) keep only ``k`` training recordings
(``classifier_gain/protocol.py``), and is scored on the same whole test clips: macro-F1,
balanced accuracy, minority and majority recall, paired bootstrap CIs and the share of the
baseline→oracle gap recovered (``classifier_gain/report.py``). Nothing is tuned on the test
folds: settings are chosen with ``--validation`` on other seeds.

    python benchmarks/classifier_gain.py --quick        # CI smoke run, < 3 min on 2 cores
    python benchmarks/classifier_gain.py                # default: 3 seeds x 3 folds, linear
    python benchmarks/classifier_gain.py --help         # data, classifiers, conditions, k

Writes ``<output_path>/classifier_gain.{json,md,png}`` (default ``results/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package beside this script shares its name; run from anywhere without installing.
ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT.parent)]

from classifier_gain.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
