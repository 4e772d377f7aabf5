"""The training set of every condition: the imbalanced real clips plus what each adds.

- ``baseline``: the imbalanced training set as is.
- ``oversample``: minority clips repeated up to the balance target.
- ``classic``: the balance target filled with audiomentations copies of the minority clips
  (:func:`classic_chain`), drawn afresh every classifier epoch.
- ``classic+scene``: the same copies, each then placed in the scene the DDSP songs are heard
  in (:func:`scene_config`: over a noise floor of the split's training clips, farther away,
  with reverb). The control for the scene: what DDSP adds beyond it is the synthesis.
- ``ddsp``: the balance target filled with DDSP songs (:func:`ddsp_training_set`), drawn afresh
  every classifier epoch, heard in the same scene.
- ``ddsp+classic``: half of the missing clips DDSP songs, half ``classic+scene`` copies.
- ``ddsp+gate``: the ``ddsp`` songs through a quality gate (:func:`gate_judge`): a song the
  judge gives less than ``min_confidence`` for its species is redrawn (up to 8 draws, then the
  most convincing one). Default judge: ``RealClipJudge`` fitted on the split's own real
  training clips (every class; no outside knowledge, no test clips); ``"birdnet"`` brings
  BirdNET's outside knowledge of the species.
- ``oracle``: all real training recordings of the minority species (the upper bound).

Balance target per minority species = the median training count of the majority species; every
balancing condition has the same number of items per epoch (base + missing clips).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from joblib import Parallel, delayed
from torch.utils.data import ConcatDataset, Dataset

from ddsp_augment.augment.backgrounds import measure_dataset_backgrounds
from ddsp_augment.augment.bank_builder import BankBuildError, Clip, build_bank
from ddsp_augment.augment.dataset import DDSPBalancedDataset
from ddsp_augment.augment.layout import ItemLayout
from ddsp_augment.checks import NoiseSource
from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.io import AudioError, atomic_write
from ddsp_augment.sampling.bank import SpeciesBank
from ddsp_augment.sampling.gate import Judge
from ddsp_augment.sampling.scene import SceneConfig, apply_scene
from ddsp_augment.training.preprocess import (
    Location,
    PreprocessSettings,
    SegmentScreen,
    analyse_audio,
)
from ddsp_augment.training.prior import train_prior
from ddsp_augment.training.train import CollapseError, TrainSettings

from .classifiers import ClipDataset
from .corpus import Corpus
from .splits import derived_seed

if TYPE_CHECKING:
    from .protocol import Split

__all__ = [
    "ALL_CONDITIONS",
    "CLASSIC_DESCRIPTION",
    "DDSP_CONDITIONS",
    "DDSP_SONG_DEFAULTS",
    "DDSP_TRAIN_DEFAULTS",
    "GATE_DEFAULTS",
    "PRIOR_TRAIN_DEFAULTS",
    "SCENE_DEFAULTS",
    "ClassicCopies",
    "ResynthesisCopies",
    "ddsp_train_settings",
    "ddsp_training_set",
    "deficits",
    "extra_clips",
    "prior_settings",
    "split_prior",
    "gate_judge",
    "gate_settings",
    "scene_backgrounds",
    "scene_config",
    "split_species_clips",
    "species_bank",
    "species_clips",
    "species_model_dir",
    "train_species_models",
    "training_set",
]

DDSP_CONDITIONS = ("ddsp", "ddsp+classic", "ddsp+gate")
ALL_CONDITIONS = (
    "baseline",
    "oversample",
    "classic",
    "classic+scene",
    "ddsp",
    "ddsp+classic",
    "ddsp+gate",
    "oracle",
)
# Species models for the DDSP conditions: one thread each, two species at a time; ~40 steps on
# 2 recordings keeps the default run's up-to-90 models within the 15-minute budget.
DDSP_TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 2,
    "steps_per_epoch": 20,
    "batch_size": 8,
    "val_fraction": 0.0,
    "threads": 1,
}
# Where DDSP songs and classic+scene copies are heard, chosen on validation splits (seeds
# 100-105, scored on the cut minority recordings of recordists the kept ones do not share),
# never on the test folds: over the noise floor of one of the split's training clips (any
# class: :func:`scene_backgrounds`) rather than the species' own two recordings, 1-3x as far
# as recorded (0-9.5 dB quieter over the background), with reverb. README: numbers.
SCENE_DEFAULTS: dict[str, Any] = {
    "background": "measured",
    "distance_m": (1.0, 3.0),
    "rt60_s": (0.2, 1.0),
}
# resynthesis: the share of the DDSP items that re-sing the kept real clips
# (:class:`ResynthesisCopies`) instead of recombining their syllables; noise: what shapes the
# songs' noise (``SpeciesBank.sample(noise=...)``): the decoder's ("model"), chosen on
# validation splits (seeds 100-101 x 3 folds, linear and CNN, ddsp and ddsp+classic): with the
# recorded residual minority recall was -0.011 on average (-0.058 to +0.019, every CI across 0).
DDSP_SONG_DEFAULTS: dict[str, Any] = {
    "jitter": None,
    "synthetic_factor": 1.0,
    "resynthesis": 0.0,
    "noise": "model",
}
# The shared prior's training (``options["prior"]``, a dict of TrainSettings overrides; None:
# no prior): one decoder per split on all its training clips, every class, then each species
# model starts from it (its own DDSP_TRAIN_DEFAULTS steps).
PRIOR_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 4, "steps_per_epoch": 50, "threads": 1}
# The ddsp+gate condition's gate (``options["gate"]``): "real" = RealClipJudge on the split's
# own training clips, "birdnet" = BirdNET (outside knowledge, extra [birdnet]).
GATE_DEFAULTS: dict[str, Any] = {"judge": "real", "min_confidence": 0.5}
CLASSIC_DESCRIPTION = (
    "audiomentations Compose: PitchShift ±2 st (p=0.5), TimeStretch 0.85-1.15 (p=0.5), "
    "Gain ±6 dB (p=1), AddGaussianSNR 10-40 dB (p=0.5); one copy per missing clip, sources "
    "cycled over the class's kept clips, drawn afresh every classifier epoch"
)


def scene_config(options: dict[str, Any]) -> SceneConfig:
    """The shared scene: :data:`SCENE_DEFAULTS` under ``options["scene"]`` (keys of
    ``SceneConfig``)."""
    values = {**SCENE_DEFAULTS, **options.get("scene", {})}
    # JSON has no tuples.
    return SceneConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def scene_backgrounds(dataset: ClipDataset) -> np.ndarray:
    """Noise floors ``[n, 1025]`` of up to 256 evenly spaced clips of ``dataset`` (every class
    and recording session), as ``DDSPBalancedDataset(backgrounds="dataset")`` measures them: the
    backgrounds the shared scene draws from."""
    return measure_dataset_backgrounds(dataset, ItemLayout(), SAMPLE_RATE, progress=False)


def deficits(labels: np.ndarray, minority: Sequence[int], n_classes: int) -> dict[int, int]:
    """Missing clips per minority class to reach the median majority training count."""
    counts = np.bincount(labels, minlength=n_classes)
    majority = [c for c in range(n_classes) if c not in set(minority) and counts[c] > 0]
    target = int(round(float(np.median(counts[majority])))) if majority else int(counts.max())
    return {c: max(0, target - int(counts[c])) for c in minority if counts[c] > 0}


# --- classic augmentation ----------------------------------------------------------------------


@contextlib.contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """audiomentations draws from the global ``random`` and ``np.random``: seed them for one
    call and restore them afterwards, so classic augmentation repeats exactly and disturbs
    nothing else."""
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the library's own RNG, restored below
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


def classic_chain():
    """The ``classic`` condition's audiomentations chain (:data:`CLASSIC_DESCRIPTION`)."""
    from audiomentations import AddGaussianSNR, Compose, Gain, PitchShift, TimeStretch

    # Moderate ranges: ±2 semitones and ±15 % tempo stay within the natural variation of one
    # species' song; larger shifts would move songs towards other species.
    return Compose(
        [
            PitchShift(min_semitones=-2.0, max_semitones=2.0, p=0.5),
            TimeStretch(min_rate=0.85, max_rate=1.15, leave_length_unchanged=False, p=0.5),
            Gain(min_gain_db=-6.0, max_gain_db=6.0, p=1.0),
            AddGaussianSNR(min_snr_db=10.0, max_snr_db=40.0, p=0.5),
        ]
    )


class ClassicCopies(Dataset):
    """Classic-augmented copies of real clips, drawn afresh every epoch (as an audiomentations
    transform in a training loop would be): item ``j`` is a copy of ``waveforms[j]`` through
    :func:`classic_chain`, seeded by ``(seed, epoch, j)``, then placed in ``scene`` (noise floors
    ``backgrounds``) when one is given; items ``(waveform [1, time], 32000, label)``."""

    def __init__(
        self,
        waveforms: list[torch.Tensor],
        labels: list[int],
        seed: int,
        scene: SceneConfig | None = None,
        backgrounds: np.ndarray | None = None,
    ) -> None:
        self.waveforms = waveforms
        self.targets = labels
        self.seed = seed
        self.epoch = 0
        self.chain = classic_chain()
        self.scene = scene
        self.backgrounds = backgrounds

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.waveforms)

    def _copy(self, audio: np.ndarray, index: int, item_seed: int) -> np.ndarray:
        """The copy of source ``audio [samples]`` for item ``index`` (before the scene)."""
        with _seeded_global_rngs(item_seed):
            return self.chain(audio, sample_rate=SAMPLE_RATE)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        item_seed = derived_seed(self.seed, self.epoch, index)
        audio = self._copy(self.waveforms[index][0].numpy(), index, item_seed)
        if self.scene is not None:
            rng = np.random.default_rng(item_seed)
            audio, _ = apply_scene(
                audio, SAMPLE_RATE, self.scene, rng, background_spectra=self.backgrounds
            )
        waveform = torch.from_numpy(np.ascontiguousarray(audio, np.float32))[None]
        return waveform, SAMPLE_RATE, self.targets[index]


class ResynthesisCopies(ClassicCopies):
    """DDSP re-performances of real clips, drawn afresh every epoch: item ``j`` is
    ``waveforms[j]`` re-sung by its species' model (``SpeciesBank.resynthesize``: the real
    song's F0 and loudness tracked and jittered, so its phrasing and timing stay; its noise from
    ``noise``, as the recombined songs'), seeded by ``(seed, epoch, j)``, then placed in
    ``scene`` like the other copies. ``species[j]`` names the model of item ``j``."""

    def __init__(
        self,
        waveforms: list[torch.Tensor],
        labels: list[int],
        species: list[str],
        bank: SpeciesBank,
        seed: int,
        scene: SceneConfig | None = None,
        backgrounds: np.ndarray | None = None,
        noise: NoiseSource = "model",
    ) -> None:
        super().__init__(waveforms, labels, seed, scene, backgrounds)
        self.species = species
        self.bank = bank
        self.noise = noise

    def _copy(self, audio: np.ndarray, index: int, item_seed: int) -> np.ndarray:
        return self.bank.resynthesize(
            self.species[index], audio, SAMPLE_RATE, seed=item_seed, noise=self.noise
        )


def extra_clips(
    corpus: Corpus,
    train_idx: np.ndarray,
    n_extra: dict[int, int],
    augment: bool,
    seed: int,
    scene: SceneConfig | None = None,
    backgrounds: np.ndarray | None = None,
) -> Dataset:
    """``n_extra[c]`` copies of class ``c``'s training clips (cycled): as they are, or
    classic-augmented (:class:`ClassicCopies`, in ``scene`` when given)."""
    waveforms, labels = [], []
    for cls, n in n_extra.items():
        sources = train_idx[corpus.labels[train_idx] == cls]
        waveforms += [corpus.waveforms[sources[j % len(sources)]] for j in range(n)]
        labels += [cls] * n
    if augment:
        return ClassicCopies(waveforms, labels, seed, scene, backgrounds)
    if scene is not None:
        raise ValueError("a scene needs augment=True (ClassicCopies)")
    return ClipDataset(waveforms, labels, SAMPLE_RATE)


# --- DDSP --------------------------------------------------------------------------------------


def ddsp_train_settings(options: dict[str, Any]) -> TrainSettings:
    """The species models' settings: :data:`DDSP_TRAIN_DEFAULTS` under ``options["train"]``."""
    return TrainSettings(**{**DDSP_TRAIN_DEFAULTS, **options.get("train", {})})


def ddsp_song_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The songs' jitter and number: :data:`DDSP_SONG_DEFAULTS` under ``options``' keys."""
    unknown = set(options) - {"train", "scene", "gate", "prior", "screen", *DDSP_SONG_DEFAULTS}
    if unknown:
        raise ValueError(f"ddsp options: unknown keys {sorted(unknown)}")
    return {key: options.get(key, value) for key, value in DDSP_SONG_DEFAULTS.items()}


def segment_screen(options: dict[str, Any]) -> SegmentScreen | None:
    """The species models' segment screen: ``options["screen"]``, a dict of ``BirdNETScreen``
    arguments (``{"location": [51, 10]}`` for the bundled German recordings: the place of the
    clips whose manifest row gives none), trains them without the stretches BirdNET hears
    another genus in; absent or None: every active stretch."""
    arguments = options.get("screen")
    if arguments is None:
        return None
    if not isinstance(arguments, dict):
        raise ValueError(f"screen must be a dict of BirdNETScreen arguments, got {arguments!r}")
    from ddsp_augment.evaluation.birdnet import BirdNETScreen

    return BirdNETScreen(**arguments)


def gate_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The ddsp+gate condition's gate: :data:`GATE_DEFAULTS` under ``options["gate"]``."""
    gate = {**GATE_DEFAULTS, **options.get("gate", {})}
    if set(gate) != set(GATE_DEFAULTS):
        raise ValueError(f"gate options: unknown keys {sorted(set(gate) - set(GATE_DEFAULTS))}")
    if gate["judge"] not in ("real", "birdnet"):
        raise ValueError(f"gate judge must be 'real' or 'birdnet', got {gate['judge']!r}")
    if not 0 <= gate["min_confidence"] <= 1:
        raise ValueError(f"gate min_confidence must be in [0, 1], got {gate['min_confidence']}")
    return gate


def gate_judge(
    base: ClipDataset, classes: Sequence[str], options: dict[str, Any]
) -> tuple[Judge, float]:
    """``(judge, min_confidence)`` of the ddsp+gate condition (:func:`gate_settings`).

    ``"real"``: a ``RealClipJudge`` fitted on every training clip of ``base`` (every class of
    the split's training side, nothing else), so the gate knows only what the classifier
    could; ``"birdnet"``: ``BirdNETJudge().confidence``, which knows these species from
    outside data.
    """
    gate = gate_settings(options)
    if gate["judge"] == "birdnet":
        from ddsp_augment.evaluation.birdnet import BirdNETJudge

        return BirdNETJudge().confidence, float(gate["min_confidence"])
    from ddsp_augment.evaluation.clip_judge import RealClipJudge

    clips: dict[str, list[np.ndarray]] = {}
    for waveform, label in zip(base.waveforms, base.targets, strict=True):
        clips.setdefault(classes[label], []).append(waveform[0].numpy())
    return RealClipJudge(clips, base.sample_rate).confidence, float(gate["min_confidence"])


def species_clips(
    base: ClipDataset,
    names: Sequence[str],
    recordists: Sequence[str],
    classes: Sequence[str],
    wanted: Sequence[int],
    locations: Sequence[Location | None] | None = None,
) -> dict[str, list[Clip]]:
    """``{species: its training clips}`` of the classes ``wanted`` among ``base``'s items (item
    ``i`` is file ``names[i]`` by ``recordists[i]``, recorded at ``locations[i]``; None: not
    known)."""
    clips: dict[str, list[Clip]] = {}
    for i, label in enumerate(base.targets):
        if label in wanted:
            place = None if locations is None else locations[i]
            audio = base.waveforms[i][0].numpy()
            clip = Clip(audio, classes[label], names[i], recordists[i], place)
            clips.setdefault(classes[label], []).append(clip)
    return clips


# What a cached species model holds: 2 = with recorded residuals (SpeciesBank.sample's
# noise="recorded"); part of the cache key.
_MODEL_FORMAT = 2


def species_model_dir(
    model_root: Path,
    clips: Sequence[Clip],
    prior: Path | None = None,
    screen: SegmentScreen | None = None,
) -> Path:
    """Where the model of one species' ``clips`` is cached: ``model_root/<hash of the file
    names>``, so a species cut to the same recordings in another split reuses it; a model
    started from a shared ``prior`` keys that prior's folder too, a screened one its screen."""
    names = sorted(c.name for c in clips) + ([prior.name] if prior is not None else [])
    names += [f"screen {screen.name}"] if screen is not None else []
    places = [c.location for c in sorted(clips, key=lambda c: c.name)]
    # Screened where they were recorded: the same clips placed elsewhere are another model.
    names += [f"at {places}"] if screen is not None and any(places) else []
    names.append(f"format {_MODEL_FORMAT}")  # a model of an older format is trained again
    key = hashlib.sha1(json.dumps(names).encode()).hexdigest()[:16]
    return model_root / key


def prior_settings(options: dict[str, Any]) -> TrainSettings | None:
    """The shared prior's settings (``options["prior"]``: overrides of
    :data:`PRIOR_TRAIN_DEFAULTS` over the species settings), or None without a prior."""
    if options.get("prior") is None:
        return None
    values = {**asdict(ddsp_train_settings(options)), **PRIOR_TRAIN_DEFAULTS, **options["prior"]}
    return TrainSettings(**values)


def split_prior(clips: Sequence[Clip], model_root: Path, options: dict[str, Any]) -> Path | None:
    """The shared prior of one split (``training.prior.train_prior`` on ``clips``: every
    training clip of the split, every class, no test clip), trained once and cached under
    ``model_root/priors/<hash of the clip names and settings>``; None without a prior
    (``options["prior"]`` unset) or when its training collapsed (species then train from
    scratch, as ``build_bank`` does)."""
    settings = prior_settings(options)
    if settings is None:
        return None
    key = json.dumps([sorted(c.name for c in clips), asdict(settings)], sort_keys=True)
    directory = model_root / "priors" / hashlib.sha1(key.encode()).hexdigest()[:16]
    done = directory / "DONE.json"  # written once the prior is complete (or failed)
    if not done.is_file():
        pre = PreprocessSettings()
        recordings = []
        for clip in clips:
            with contextlib.suppress(AudioError):  # an unusable clip: the prior goes without
                recordings.append(
                    analyse_audio(
                        clip.audio, clip.name, clip.species, clip.recordist or clip.name, pre
                    )
                )
        failure = None
        try:
            train_prior(recordings, directory, settings, progress=False, log=lambda _: None)
        except CollapseError as error:
            failure = str(error)
        atomic_write(done, lambda tmp: tmp.write_text(json.dumps({"failure": failure})))
    return None if json.loads(done.read_text())["failure"] else directory


def _species_settings(prior: Path | None, options: dict[str, Any]) -> TrainSettings:
    settings = ddsp_train_settings(options)
    return settings if prior is None else replace(settings, prior=str(prior))


def _train_cpu_seconds(
    clips: Sequence[Clip],
    directory: Path,
    settings: TrainSettings,
    screen: SegmentScreen | None,
) -> float:
    """``build_bank`` of one species' clips; the CPU seconds it took in this process."""
    start = time.process_time()
    with contextlib.suppress(BankBuildError):  # cached by build_bank, reported by species_bank
        build_bank(clips, directory, settings, screen=screen)
    return time.process_time() - start


def _prior_cpu_seconds(clips: Sequence[Clip], model_root: Path, options: dict[str, Any]) -> float:
    start = time.process_time()
    split_prior(clips, model_root, options)
    return time.process_time() - start


def train_species_models(
    splits: Sequence[tuple[dict[str, list[Clip]], list[Clip]]],
    model_root: Path,
    options: dict[str, Any],
    jobs: int,
) -> float:
    """Train (or find cached) every split's models, ``jobs`` at a time: the shared priors
    (with ``options["prior"]``: :func:`split_prior`), then one model per species' clip set
    (:func:`species_model_dir`). Done before the splits run, so no two processes train the
    same model and the cores stay busy. Failures are cached by ``build_bank`` and reported when
    a split loads its bank.

    Args:
        splits: Per split, ``({species: its training clips}, every training clip)``.

    Returns:
        The CPU seconds spent in worker processes (0 with ``jobs`` = 1: all in this one).
    """
    seconds = []
    if prior_settings(options) is not None:
        priors = {tuple(sorted(c.name for c in every)): every for _, every in splits}
        seconds += Parallel(n_jobs=max(1, min(jobs, len(priors))))(
            delayed(_prior_cpu_seconds)(every, model_root, options) for every in priors.values()
        )
    unique = {}
    screen = segment_screen(options)
    for species_clips, every in splits:
        prior = split_prior(every, model_root, options)  # cached above
        for clips in species_clips.values():
            unique[species_model_dir(model_root, clips, prior, screen)] = (clips, prior)
    seconds += Parallel(n_jobs=max(1, min(jobs, len(unique))))(
        delayed(_train_cpu_seconds)(clips, directory, _species_settings(prior, options), screen)
        for directory, (clips, prior) in unique.items()
    )
    return float(sum(seconds)) if jobs > 1 else 0.0


def species_bank(
    clips: dict[str, list[Clip]],
    model_root: Path,
    options: dict[str, Any],
    prior_clips: Sequence[Clip] = (),
) -> tuple[SpeciesBank | None, dict[str, str]]:
    """One bank of every species' model (trained by ``build_bank`` on that species' clips only,
    started from the shared prior of ``prior_clips`` with ``options["prior"]``, or cached:
    :func:`species_model_dir`), and ``{species: reason}`` for those without one."""
    entries, failures = {}, {}
    prior = split_prior(prior_clips, model_root, options)
    settings = _species_settings(prior, options)
    screen = segment_screen(options)
    for species, group in clips.items():
        directory = species_model_dir(model_root, group, prior, screen)
        try:
            bank, failed = build_bank(group, directory, settings, screen=screen)
        except BankBuildError as error:
            failures.update(error.failures)
            continue
        failures.update(failed)
        entries[species] = bank.entry(species)
    return (SpeciesBank(entries) if entries else None), failures


def ddsp_training_set(
    base: ClipDataset,
    names: Sequence[str],
    recordists: Sequence[str],
    classes: Sequence[str],
    n_synthetic: dict[int, int],
    seed: int,
    model_root: Path,
    options: dict[str, Any],
    backgrounds: np.ndarray | None = None,
    quality_gate: tuple[Judge, float] | None = None,
    locations: Sequence[Location | None] | None = None,
) -> tuple[Dataset, dict[str, str]]:
    """``base`` followed by ``n_synthetic[c]`` DDSP songs of each class ``c``.

    One species model per class in ``n_synthetic`` (:func:`species_bank`), trained on that
    class's clips of ``base`` only (item ``i`` is file ``names[i]`` by ``recordists[i]``,
    recorded at ``locations[i]``, which a segment screen in ``options["screen"]`` uses),
    cached under ``model_root`` and reused while the clips and settings are unchanged. The
    songs are heard in :func:`scene_config` over ``backgrounds`` (noise floors; default
    :func:`scene_backgrounds` of ``base``). ``options["train"]`` overrides
    :data:`DDSP_TRAIN_DEFAULTS` (keys of ``TrainSettings``), ``options["scene"]`` the scene;
    ``jitter`` overrides ``JitterConfig`` knobs, ``synthetic_factor`` scales the number of songs
    (1: balance), ``resynthesis`` is the share of them that re-sing the class's real clips
    (:class:`ResynthesisCopies`, the species' own jitter) instead of recombining syllables.
    ``quality_gate`` (``(judge, min_confidence)``) gates every recombined song
    (``DDSPBalancedDataset(quality_gate=)``).

    Returns:
        The dataset (``base``'s items unchanged, then the songs, every item ``(waveform
        [1, time] float32, 32000, label)``) and ``{species: reason}`` for classes whose model
        could not be trained: they get no songs (``base`` alone if none could).
    """
    wanted = [c for c, n in n_synthetic.items() if n > 0]
    clips = species_clips(base, names, recordists, classes, wanted, locations)
    if not clips:
        return base, {}
    every = species_clips(base, names, recordists, classes, range(len(classes)), locations)
    prior_clips = [clip for group in every.values() for clip in group]
    bank, failures = species_bank(clips, model_root, options, prior_clips)
    if bank is None:
        return base, failures
    song = ddsp_song_settings(options)
    counts = np.bincount(base.targets, minlength=len(classes))
    modelled = [c for c in wanted if classes[c] in bank.species]
    n_songs = {c: round(float(song["synthetic_factor"]) * n_synthetic[c]) for c in modelled}
    n_resung = {c: round(float(song["resynthesis"]) * n) for c, n in n_songs.items()}
    target = {c: int(counts[c]) + n_songs[c] - n_resung[c] for c in modelled}
    scene = scene_config(options)
    floors = scene_backgrounds(base) if backgrounds is None else backgrounds
    balanced = DDSPBalancedDataset(
        base,
        bank,
        target=target,
        labels=list(base.targets),
        label_to_species=dict(enumerate(classes)),
        seed=seed,
        scene=scene,
        backgrounds=floors,
        jitter=song["jitter"],  # None, or knobs that replace the species defaults
        noise=song["noise"],
        quality_gate=quality_gate,
        progress=False,
    )
    if not any(n_resung.values()):
        return balanced, failures
    sources, labels = [], []
    for c, n in n_resung.items():
        own = [i for i, label in enumerate(base.targets) if label == c]
        sources += [own[j % len(own)] for j in range(n)]
        labels += [c] * n
    resung = ResynthesisCopies(
        [base.waveforms[i] for i in sources],
        labels,
        [classes[c] for c in labels],
        bank,
        derived_seed(seed, 3),
        scene,
        floors,
        noise=song["noise"],
    )
    return ConcatDataset([balanced, resung]), failures


def split_species_clips(split: Split, corpus: Corpus) -> tuple[dict[str, list[Clip]], list[Clip]]:
    """The clips each DDSP species model of ``split`` trains on (the kept training clips of
    every minority class that misses some), and every training clip of the split (a shared
    prior's)."""
    missing = deficits(corpus.labels[split.train_idx], split.minority, len(corpus.classes))
    arguments = (
        corpus.dataset(split.train_idx),
        [corpus.names[i] for i in split.train_idx],
        [corpus.recordists[i] for i in split.train_idx],
        corpus.classes,
    )
    locations = [corpus.locations[i] for i in split.train_idx]
    every = species_clips(*arguments, range(len(corpus.classes)), locations)
    return (
        species_clips(*arguments, [c for c, n in missing.items() if n > 0], locations),
        [clip for group in every.values() for clip in group],
    )


def training_set(
    condition: str, split: Split, corpus: Corpus, ddsp_options: dict[str, Any], cache_root: Path
) -> tuple[Dataset, dict[str, str]]:
    """The training dataset of ``condition`` on ``split``, and ``{species: reason}`` for the
    DDSP models that could not be trained."""
    if condition == "oracle":
        return corpus.dataset(split.full_train_idx), {}
    base = corpus.dataset(split.train_idx)
    if condition == "baseline":
        return base, {}
    missing = deficits(corpus.labels[split.train_idx], split.minority, len(corpus.classes))
    seed = derived_seed(split.seed, split.fold, 1)
    if condition in ("oversample", "classic"):
        extra = extra_clips(corpus, split.train_idx, missing, condition == "classic", seed)
        return ConcatDataset([base, extra]), {}
    scene, backgrounds = scene_config(ddsp_options), scene_backgrounds(base)
    if condition == "classic+scene":
        extra = extra_clips(corpus, split.train_idx, missing, True, seed, scene, backgrounds)
        return ConcatDataset([base, extra]), {}
    if condition in DDSP_CONDITIONS:
        n_classic = {c: n // 2 for c, n in missing.items()} if condition == "ddsp+classic" else {}
        balanced, failures = ddsp_training_set(
            base,
            names=[corpus.names[i] for i in split.train_idx],
            recordists=[corpus.recordists[i] for i in split.train_idx],
            locations=[corpus.locations[i] for i in split.train_idx],
            classes=corpus.classes,
            n_synthetic={c: n - n_classic.get(c, 0) for c, n in missing.items()},
            seed=seed,
            model_root=cache_root / "models",
            options=ddsp_options,
            backgrounds=backgrounds,
            quality_gate=gate_judge(base, corpus.classes, ddsp_options)
            if condition == "ddsp+gate"
            else None,
        )
        if not n_classic:
            return balanced, failures
        classic = extra_clips(corpus, split.train_idx, n_classic, True, seed, scene, backgrounds)
        return ConcatDataset([balanced, classic]), failures
    raise ValueError(f"unknown condition {condition!r}")


def settings_record(options: dict[str, Any]) -> dict[str, Any]:
    """The augmentation settings of a run, for its JSON."""
    return {
        "classic": CLASSIC_DESCRIPTION,
        "scene": asdict(scene_config(options)),
        "scene_backgrounds": "noise floors of up to 256 evenly spaced training clips of the "
        "split, every class",
        "ddsp_songs": ddsp_song_settings(options),
        "ddsp_gate": {
            **gate_settings(options),
            "max_draws": 8,
            "judge_description": "real: RealClipJudge (logistic regression on log-mel "
            "statistics of loud 1 s windows) fitted on the split's own training clips, every "
            "class; birdnet: BirdNET GLOBAL 6K v2.4 (outside knowledge of the species)",
        },
        "ddsp_train": asdict(ddsp_train_settings(options)),
        "ddsp_prior": None if prior_settings(options) is None else asdict(prior_settings(options)),
        "ddsp_screen": getattr(segment_screen(options), "name", None),
    }
