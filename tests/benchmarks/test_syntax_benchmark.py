"""``benchmarks/syntax.py`` on one bundled species: it runs, and its distances are sane."""

from __future__ import annotations

import math

from syntax import MODES, _species


def test_one_species_scores_every_mode_against_the_held_out_half():
    result = _species("Fringilla_coelebs", n_songs=3, seconds=3.0)
    assert result["recordings"][0] >= 1 and result["recordings"][1] >= 1
    assert result["phrases_held_out"] >= 1 and result["syllable_types"] >= 1
    for key in ("real_vs_real", *MODES, *(f"{m}_vs_training" for m in MODES)):
        distances = result[key]
        assert set(distances) == {"transition_js", "syllable_w_s", "gap_w_s", "phrase_w_s"}
        # Jensen-Shannon divergence in bits lies in [0, 1]; durations are seconds.
        assert 0.0 <= distances["transition_js"] <= 1.0
        assert all(math.isfinite(v) and v >= 0 for v in distances.values())
    # Songs composed from the training half copy its syllable order better than they match
    # another half's birds: markov walks the training half's own chain.
    assert result["markov_vs_training"]["transition_js"] < result["markov"]["transition_js"]
