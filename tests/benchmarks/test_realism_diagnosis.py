"""``benchmarks/realism_diagnosis.py``: its windows and its argument checks (no BirdNET run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from realism_diagnosis import parse_args, windows


def test_windows_keep_half_window_remainders():
    audio = np.arange(8000, dtype=np.float32)  # 8 s at 1 kHz: 3 + 3 + 2 s
    cuts = windows(audio, 3.0, 1000)
    assert [c.shape[0] for c in cuts] == [3000, 3000, 2000]
    assert cuts[1][0] == 3000.0
    # A 1 s remainder (under half a window) is dropped; a clip under half a window is kept whole.
    assert [c.shape[0] for c in windows(audio[:7000], 3.0, 1000)] == [3000, 3000]
    assert [c.shape[0] for c in windows(audio[:1000], 3.0, 1000)] == [1000]
    with pytest.raises(ValueError, match="seconds"):
        windows(audio, 0.0001, 1000)


def test_parse_args_needs_a_realism_run(tmp_path):
    with pytest.raises(ValueError, match="run_path"):
        parse_args(["--run_path", str(tmp_path)])
    (tmp_path / "models").mkdir()
    (tmp_path / "realism.json").write_text(json.dumps({"species": []}), "utf-8")
    args = parse_args(["--run_path", str(tmp_path), "--species", "Corvus_corax", "--n", "3"])
    assert (args.species, args.n, args.seconds, args.seed) == (["Corvus_corax"], 3, 3.0, 0)
    with pytest.raises(ValueError, match="n >= 1"):
        parse_args(["--run_path", str(tmp_path), "--n", "0"])
