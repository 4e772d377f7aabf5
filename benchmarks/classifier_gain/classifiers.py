"""Bird-species clip classifiers on log-mel features, and the metrics of an imbalance benchmark.

Used by ``benchmarks/classifier_gain.py`` to measure what augmentation does for a downstream
classifier. Training data is any map-style torch ``Dataset`` yielding torchaudio-style items
``(waveform [1, time] float32 tensor, sample_rate, label_index)`` (e.g. :class:`ClipDataset`, or
one wrapped to add synthetic clips); test clips are scored whole.

Two classifiers, both trained on random fixed-length crops (``crop_seconds``) and evaluated on
whole test clips by averaging class probabilities over sliding windows of the same length:

- :class:`LinearClipClassifier`: standardised multinomial logistic regression on log-mel
  statistics per band (mean, std, 10/50/90th percentiles, mean |frame-to-frame change|);
  seconds per fit.

Both go over the training set in epochs and call :func:`set_epoch` before each, so datasets that
draw fresh random items per epoch (``DDSPBalancedDataset``, on-the-fly augmentation) show the
classifier a new draw each time, as they would in any training loop.
- :class:`CNNClipClassifier`: a small CNN on the log-mel image trained from scratch with Adam
  for a fixed number of steps; minutes per fit on 2 CPU cores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # a scikit-learn dependency
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ddsp_augment.constants import SAMPLE_RATE

__all__ = [
    "CNNClipClassifier",
    "ClipDataset",
    "FeatureConfig",
    "LinearClipClassifier",
    "LogMelCache",
    "class_recall",
    "classification_scores",
    "gap_recovered",
    "make_classifier",
    "paired_bootstrap_ci",
    "set_epoch",
]


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end shared by both classifiers.

    ``f_max`` is 11 kHz although audio is at 32 kHz: in the bundled xeno-canto clips the upper
    band edge varies between recordings from ~4 to 16.5 kHz (recordists' low-pass filters, MP3
    encoding). That edge describes the recording channel, not the bird, and the species here sing
    below ~10 kHz; ``f_min`` = 500 Hz drops wind and traffic rumble.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop_length: int = 320  # 10 ms frames
    n_mels: int = 64
    f_min: float = 500.0
    f_max: float = 11000.0
    crop_seconds: float = 3.0
    eval_hop_seconds: float = 1.0

    @property
    def crop_frames(self) -> int:
        return int(round(self.crop_seconds * self.sample_rate / self.hop_length))

    @property
    def eval_hop_frames(self) -> int:
        return max(1, int(round(self.eval_hop_seconds * self.sample_rate / self.hop_length)))


class ClipDataset(Dataset):
    """Real recordings as a torchaudio-style map dataset.

    Item ``i`` is ``(waveform [1, time] float32 tensor, sample_rate, label_index)``; the waveform
    is the stored tensor itself (no copy), so repeated access and :class:`LogMelCache` are cheap.
    ``targets`` lists every item's label (torchvision convention; wrappers such as
    ``DDSPBalancedDataset`` read it instead of decoding items).

    Args:
        waveforms: One ``[time]`` or ``[1, time]`` float32 array/tensor per clip.
        labels: Class index per clip.
        sample_rate: Common sample rate of all clips.
    """

    def __init__(
        self,
        waveforms: Sequence[np.ndarray | Tensor],
        labels: Sequence[int],
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        if len(waveforms) != len(labels):
            raise ValueError(f"{len(waveforms)} waveforms but {len(labels)} labels")
        self.waveforms = [torch.as_tensor(w, dtype=torch.float32).reshape(1, -1) for w in waveforms]
        self.targets = [int(label) for label in labels]
        self.sample_rate = int(sample_rate)

    def __len__(self) -> int:
        return len(self.waveforms)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        return self.waveforms[index], self.sample_rate, self.targets[index]


class LogMelCache:
    """Log-mel spectrogram ``[n_mels, frames]`` of a clip, memoised by content for chosen clips.

    A log-mel of an 8 s clip costs ~25 ms on 2 cores, a content hash ~1 ms. Real recordings are
    featurised in every split and condition, so :meth:`add` them once; any other clip (augmented,
    synthetic) is computed on demand and not stored, so memory stays bounded.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig()) -> None:
        self.config = config
        self.transform = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_mels=config.n_mels,
            f_min=config.f_min,
            f_max=config.f_max,
            power=2.0,
        )
        self._store: dict[bytes, Tensor] = {}

    @staticmethod
    def _key(waveform: Tensor) -> bytes:
        array = np.ascontiguousarray(waveform.detach().reshape(-1).numpy())
        return hashlib.blake2b(memoryview(array), digest_size=16).digest()

    def compute(self, waveforms: Tensor) -> Tensor:
        """``[..., time]`` → ``[..., n_mels, frames]`` natural log of mel power + 1e-6."""
        with torch.no_grad():
            return torch.log(self.transform(waveforms) + 1e-6)

    def add(self, waveforms: Sequence[Tensor]) -> None:
        """Compute and keep the log-mels of these clips."""
        for waveform in waveforms:
            self._store[self._key(waveform)] = self.compute(waveform.reshape(-1))

    def __call__(self, waveform: Tensor) -> Tensor:
        """Log-mel ``[n_mels, frames]`` of one ``[time]`` / ``[1, time]`` clip."""
        cached = self._store.get(self._key(waveform))
        return cached if cached is not None else self.compute(waveform.reshape(-1))


def set_epoch(dataset: Dataset, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on ``dataset`` and on every dataset inside a ``ConcatDataset``
    (those without the method draw the same items every epoch)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    for inner in getattr(dataset, "datasets", ()):
        set_epoch(inner, epoch)


def _check_rate(sample_rate: int, config: FeatureConfig) -> None:
    if sample_rate != config.sample_rate:
        raise ValueError(f"clip at {sample_rate} Hz, classifier expects {config.sample_rate} Hz")


def _windows(logmel: Tensor, length: int, hop: int) -> Tensor:
    """``[n_mels, F]`` → ``[W, n_mels, min(F, length)]`` sliding windows (one if F ≤ length).

    The last window is aligned with the clip's end so no tail is left unscored.
    """
    n_frames = logmel.shape[-1]
    if n_frames <= length:
        return logmel[None]
    windows = logmel.unfold(-1, length, hop).permute(1, 0, 2)
    if (n_frames - length) % hop:
        windows = torch.cat([windows, logmel[None, :, -length:]])
    return windows


def _window_stats(windows: Tensor) -> np.ndarray:
    """``[W, n_mels, L]`` → ``[W, 6 * n_mels]``: mean, std, p10, p50, p90, mean |Δ| per band.

    Percentiles by one sort and linear interpolation: ~100x faster than ``torch.quantile`` on
    these shapes.
    """
    x = np.sort(np.asarray(windows.numpy(), np.float64), axis=-1)
    length = x.shape[-1]
    percentiles = []
    for q in (0.1, 0.5, 0.9):
        position = q * (length - 1)
        low = int(np.floor(position))
        high = min(low + 1, length - 1)
        percentiles.append(x[..., low] + (position - low) * (x[..., high] - x[..., low]))
    raw = np.asarray(windows.numpy(), np.float64)  # time order, for the frame-to-frame change
    delta = np.abs(np.diff(raw, axis=-1)).mean(-1) if length > 1 else np.zeros(raw.shape[:-1])
    return np.concatenate([x.mean(-1), x.std(-1), *percentiles, delta], axis=-1)


def _full_proba(model_classes: np.ndarray, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Scatter probabilities of the classes seen in training into ``[n, n_classes]``."""
    out = np.zeros((proba.shape[0], n_classes))
    out[:, model_classes] = proba
    return out


class _ClipClassifier:
    """What both classifiers share: the log-mel front end and whole-clip scoring, which averages
    class probabilities over sliding windows of the training crop length."""

    def __init__(
        self, n_classes: int, seed: int, config: FeatureConfig, cache: LogMelCache | None
    ) -> None:
        self.n_classes = n_classes
        self.seed = seed
        self.config = config
        self.cache = cache if cache is not None else LogMelCache(config)
        self.model = None

    def _window_proba(self, windows: Tensor) -> np.ndarray:
        """Log-mel windows ``[W, n_mels, L]`` → class probabilities ``[W, n_classes]``."""
        raise NotImplementedError

    def predict_proba(self, waveforms: Sequence[Tensor]) -> np.ndarray:
        """Whole clips (``[time]`` or ``[1, time]`` at the config rate) → ``[n, n_classes]``."""
        if self.model is None:
            raise RuntimeError("fit() first")
        out = np.zeros((len(waveforms), self.n_classes))
        for i, waveform in enumerate(waveforms):
            windows = _windows(
                self.cache(waveform), self.config.crop_frames, self.config.eval_hop_frames
            )
            out[i] = self._window_proba(windows).mean(0)
        return out


class LinearClipClassifier(_ClipClassifier):
    """Logistic regression on log-mel statistics of crops.

    Training goes over the dataset ``epochs`` times (calling :func:`set_epoch` first), and each
    item contributes one random crop of ``crop_seconds`` per epoch (clips shorter than that: the
    whole clip), so every item, real or synthetic, weighs the same, and an item that is drawn
    afresh every epoch contributes ``epochs`` different draws. ``C`` is fixed a priori (strong L2
    for a few hundred rows of 384 features), never tuned on test folds.
    """

    def __init__(
        self,
        n_classes: int,
        seed: int = 0,
        config: FeatureConfig = FeatureConfig(),
        cache: LogMelCache | None = None,
        epochs: int = 4,
        C: float = 0.1,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        super().__init__(n_classes, seed, config, cache)
        self.epochs = epochs
        self.C = C

    def fit(self, dataset: Dataset) -> LinearClipClassifier:
        """Fit on every item of ``dataset`` ((waveform [1, T], sample_rate, label) items)."""
        rng = np.random.default_rng(self.seed)
        length = self.config.crop_frames
        crops, targets = [], []
        for epoch in range(self.epochs):
            set_epoch(dataset, epoch)
            for index in range(len(dataset)):
                waveform, sample_rate, label = dataset[index]
                _check_rate(sample_rate, self.config)
                logmel = self.cache(waveform)
                start = int(rng.integers(0, max(logmel.shape[-1] - length, 0) + 1))
                crops.append(logmel[:, start : start + length])
                targets.append(int(label))
        # Crops of clips shorter than crop_seconds differ in length: one stats call per length.
        rows = [_window_stats(crop[None]) for crop in crops]
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=3000, tol=1e-4)
        )
        # A few hundred rows: threaded BLAS only adds synchronisation (20x slower measured on
        # 2 busy cores), so one BLAS thread.
        with threadpool_limits(limits=1, user_api="blas"):
            self.model.fit(np.concatenate(rows), np.asarray(targets))
        return self

    def _window_proba(self, windows: Tensor) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="blas"):
            proba = self.model.predict_proba(_window_stats(windows))
        return _full_proba(self.model.classes_, proba, self.n_classes)


class _CropDataset(Dataset):
    """Random fixed-length crops ``[crop_samples]`` of a clip dataset.

    A clip shorter than the crop is repeated to fill it: zero padding would show the network
    digital silence that never occurs in the (unpadded) evaluation windows.
    """

    def __init__(self, base: Dataset, crop_samples: int, sample_rate: int, seed: int) -> None:
        self.base = base
        self.crop_samples = crop_samples
        self.sample_rate = sample_rate
        # Used from the main process only (num_workers=0), so the draw order is reproducible.
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        waveform, sample_rate, label = self.base[index]
        _check_rate(sample_rate, FeatureConfig(sample_rate=self.sample_rate))
        waveform = waveform.reshape(-1)
        excess = waveform.shape[0] - self.crop_samples
        if excess >= 0:
            start = int(self.rng.integers(0, excess + 1))
            return waveform[start : start + self.crop_samples], int(label)
        repeats = -(-self.crop_samples // waveform.shape[0])
        return waveform.repeat(repeats)[: self.crop_samples], int(label)


class _SmallCNN(nn.Module):
    """``[B, n_mels, frames]`` log-mel → ``[B, n_classes]`` logits.

    Four conv blocks (3×3 conv, batch norm, ReLU, 2×2 max-pool), then max over frequency and
    mean + max over time, dropout and a linear layer. Input bands are standardised with
    statistics of the training set (buffers), not per batch.
    """

    def __init__(self, n_classes: int, n_mels: int, channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * previous, n_classes))
        self.register_buffer("band_mean", torch.zeros(n_mels, 1))
        self.register_buffer("band_std", torch.ones(n_mels, 1))

    def forward(self, logmel: Tensor) -> Tensor:
        x = ((logmel - self.band_mean) / self.band_std)[:, None]
        x = self.features(x).amax(dim=2)  # [B, C, T']
        return self.head(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


class CNNClipClassifier(_ClipClassifier):
    """Small CNN on log-mel crops, trained from scratch for a fixed step budget.

    Training runs in epochs of shuffled items (:func:`set_epoch` before each, so synthetic and
    augmented items are drawn afresh), one random crop per item, until ``steps`` batches:
    class balance is whatever the dataset (condition) provides. Seeded and single-process so
    runs repeat exactly on one machine.
    """

    def __init__(
        self,
        n_classes: int,
        seed: int = 0,
        config: FeatureConfig = FeatureConfig(),
        cache: LogMelCache | None = None,
        steps: int = 400,
        batch_size: int = 32,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__(n_classes, seed, config, cache)
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay

    def fit(self, dataset: Dataset) -> CNNClipClassifier:
        """Train on ``dataset`` ((waveform [1, T], sample_rate, label) items)."""
        torch.manual_seed(self.seed)  # weight init and dropout
        generator = torch.Generator().manual_seed(self.seed)
        crop_samples = int(round(self.config.crop_seconds * self.config.sample_rate))
        crops = _CropDataset(dataset, crop_samples, self.config.sample_rate, self.seed)

        model = _SmallCNN(self.n_classes, self.config.n_mels)
        # Band statistics from (up to 256 of) the training clips; a wrapped dataset may
        # synthesise items on access, so not all of them.
        picks = torch.randperm(len(dataset), generator=generator)[:256].tolist()
        logmels = torch.cat([self.cache(dataset[i][0]) for i in picks], dim=-1)
        model.band_mean.copy_(logmels.mean(-1, keepdim=True))
        model.band_std.copy_(logmels.std(-1, keepdim=True).clamp_min(1e-3))
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        model.train()
        step, epoch = 0, 0
        while step < self.steps:
            set_epoch(dataset, epoch)
            sampler = RandomSampler(crops, generator=generator)
            loader = DataLoader(crops, batch_size=self.batch_size, sampler=sampler)
            for waveforms, labels in loader:
                loss = nn.functional.cross_entropy(model(self.cache.compute(waveforms)), labels)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                step += 1
                if step == self.steps:
                    break
            epoch += 1
        self.model = model.eval()
        return self

    def _window_proba(self, windows: Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(windows), -1).numpy()


def make_classifier(
    name: str, n_classes: int, seed: int, cache: LogMelCache | None = None, **options
) -> LinearClipClassifier | CNNClipClassifier:
    """``"linear"`` or ``"cnn"`` classifier; ``options`` go to its constructor."""
    if name == "linear":
        return LinearClipClassifier(n_classes, seed=seed, cache=cache, **options)
    if name == "cnn":
        return CNNClipClassifier(n_classes, seed=seed, cache=cache, **options)
    raise ValueError(f"unknown classifier {name!r} (linear, cnn)")


# --- metrics -----------------------------------------------------------------------------------


def class_recall(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall per class ``[n_classes]``; NaN for classes absent from ``y_true``."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    recall = np.full(n_classes, np.nan)
    for cls in np.unique(y_true):
        recall[cls] = np.mean(y_pred[y_true == cls] == cls)
    return recall


def classification_scores(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    minority: Sequence[int],
    n_classes: int,
) -> dict[str, float | np.ndarray]:
    """Scores of one test set; every average runs over the classes present in ``y_true``.

    Returns:
        ``macro_f1`` (unweighted mean F1; a wrong prediction of a class absent from the test set
        still costs its true class recall), ``balanced_accuracy`` (mean recall),
        ``minority_recall`` / ``majority_recall`` (mean recall over the minority / the other
        classes; NaN if none is present) and ``per_class_recall`` ``[n_classes]`` (NaN = absent).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    recall = class_recall(y_true, y_pred, n_classes)
    present = np.unique(y_true)
    is_minority = np.zeros(n_classes, bool)
    is_minority[list(minority)] = True
    minority_present = present[is_minority[present]]
    majority_present = present[~is_minority[present]]
    return {
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "balanced_accuracy": float(np.mean(recall[present])),
        "minority_recall": float(np.mean(recall[minority_present]))
        if len(minority_present)
        else float("nan"),
        "majority_recall": float(np.mean(recall[majority_present]))
        if len(majority_present)
        else float("nan"),
        "per_class_recall": recall,
    }


def paired_bootstrap_ci(
    diff_values: Sequence[float] | np.ndarray, n_boot: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of paired differences and its 95 % percentile-bootstrap CI: ``(mean, lo, hi)``.

    ``diff_values`` are per-split differences (condition − reference on the same split), so
    split difficulty cancels. Splits that share a seed overlap in training data and are not
    independent; the interval treats them as exchangeable and is therefore somewhat optimistic.
    NaNs are ignored; all-NaN gives NaNs.
    """
    diffs = np.asarray(diff_values, np.float64)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_boot, diffs.size))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(lo), float(hi)


def gap_recovered(condition: float, baseline: float, oracle: float) -> float:
    """Fraction of the baseline→oracle gap a condition closes: ``(cond − base)/(oracle − base)``.

    1 = as good as having all real recordings, 0 = no better than the imbalanced baseline,
    negative = worse. NaN when the oracle is not better than the baseline (no gap to close).
    """
    gap = oracle - baseline
    if not np.isfinite(gap) or gap <= 0:
        return float("nan")
    return float((condition - baseline) / gap)
