"""A light judge fitted on the user's own real clips, for species BirdNET does not know.

Logistic regression on the log-mel statistics (``metrics.log_mel_embedding``) of the loud 1 s
windows of each real clip, at the model rate; a clip's confidence for a species is the mean
probability of that species over its windows. Needs scikit-learn (extra ``ddsp-augment[gate]``).
Fitting takes seconds, judging a 3 s clip ~10 ms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..constants import SAMPLE_RATE
from ..io import judged_clip
from .evaluate import _windows
from .metrics import log_mel_embeddings

__all__ = ["RealClipJudge"]


def _features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``[windows, 128]`` log-mel statistics of a clip's loud 1 s windows at the model rate."""
    audio = judged_clip(audio, sample_rate, SAMPLE_RATE)
    return log_mel_embeddings(np.stack(_windows(audio, SAMPLE_RATE)), SAMPLE_RATE)


class RealClipJudge:
    """Species classifier trained on real clips ``{species: [audio [samples], ...]}``.

    Example::

        judge = RealClipJudge({"Parus_major": tits, "Turdus_merula": blackbirds}, 32000)
        bank.sample("Parus_major", n=8, judge=judge.confidence, min_confidence=0.5)
    """

    def __init__(
        self, clips: Mapping[str, Sequence[np.ndarray]], sample_rate: int, seed: int = 0
    ) -> None:
        if len(clips) < 2 or any(len(c) == 0 for c in clips.values()):
            raise ValueError("RealClipJudge needs real clips of at least two species")
        try:  # optional: the "gate" extra
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
        except ImportError as error:
            raise ImportError(
                'RealClipJudge needs scikit-learn: pip install "ddsp-augment[gate]"'
            ) from error
        features, labels = [], []
        for species, audios in clips.items():
            for audio in audios:
                rows = _features(audio, sample_rate)
                features.append(rows)
                labels += [species] * rows.shape[0]
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
        )
        self.model.fit(np.concatenate(features), labels)
        self.species = [str(c) for c in self.model.classes_]

    def probabilities(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``[len(self.species)]``: mean probability of each species over the clip's windows."""
        return self.model.predict_proba(_features(audio, sample_rate)).mean(axis=0)

    def confidence(self, audio: np.ndarray, sample_rate: int, species: str) -> float:
        """Mean probability over the clip's windows that it is ``species``."""
        if species not in self.species:
            raise ValueError(f"RealClipJudge was not fitted on {species!r}; has {self.species}")
        return float(self.probabilities(audio, sample_rate)[self.species.index(species)])
