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
- :class:`CNNClipClassifier`: a small CNN on the log-mel image trained from scratch with Adam
  for a fixed number of steps, SpecAugment masking in training; CUDA when available.

A third, :class:`BirdNETProbe`, is the field's default for small data: logistic regression on
frozen BirdNET embeddings of 3 s windows (:class:`BirdNETEmbeddings`; optional extra
``[birdnet]``), clips scored by the mean of their windows' probabilities likewise.

All go over the training set in epochs and call :func:`set_epoch` before each, so datasets that
draw fresh random items per epoch (``DDSPBalancedDataset``, on-the-fly augmentation) show the
classifier a new draw each time, as they would in any training loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torchaudio
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits  # a scikit-learn dependency
from torch import Tensor, nn
from torch.utils.data import Dataset

from ddsp_augment.constants import SAMPLE_RATE
from ddsp_augment.evaluation.birdnet import BirdNETJudge

__all__ = [
    "BirdNETEmbeddings",
    "BirdNETProbe",
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


def _content_key(waveform: Tensor, sample_rate: int = 0) -> bytes:
    """Digest of a clip's samples (and rate): equal only for identical clips."""
    array = np.ascontiguousarray(waveform.detach().reshape(-1).numpy())
    digest = hashlib.blake2b(memoryview(array), digest_size=16)
    digest.update(int(sample_rate).to_bytes(4, "little"))
    return digest.digest()


class LogMelCache:
    """Log-mel spectrogram ``[n_mels, frames]`` of a clip, memoised by content for chosen clips.

    A log-mel of an 8 s clip costs ~25 ms on 2 cores, a content hash ~1 ms. Real recordings are
    featurised in every split and condition, so :meth:`add` them once; any other clip (augmented,
    synthetic) is computed on demand and not stored, so memory stays bounded. The real clips
    reach the classifiers as the added tensors or views of them, so a look-up first tries where
    a clip's samples live (the added tensors are kept, so no other live clip can share that
    memory) and hashes only the clips not found there: hashing was ~7 % of a linear fit's time.
    Added clips must not be modified in place afterwards.
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
        self._added: list[tuple[Tensor, Tensor]] = []  # (clip, its log-mel)
        self._by_address: dict[tuple[int, int], Tensor] = {}

    @staticmethod
    def _address(waveform: Tensor) -> tuple[int, int] | None:
        """Where a contiguous float32 clip's samples live: ``(data pointer, samples)``."""
        if waveform.dtype != torch.float32 or not waveform.is_contiguous():
            return None
        return waveform.data_ptr(), waveform.numel()

    def __getstate__(self) -> dict:
        # Addresses mean nothing in another process (joblib workers): rebuilt on arrival.
        return {**self.__dict__, "_by_address": {}}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for waveform, logmel in self._added:
            address = self._address(waveform)
            if address is not None:
                self._by_address[address] = logmel

    def compute(self, waveforms: Tensor) -> Tensor:
        """``[..., time]`` → ``[..., n_mels, frames]`` natural log of mel power + 1e-6."""
        with torch.no_grad():
            return torch.log(self.transform(waveforms) + 1e-6)

    def add(self, waveforms: Sequence[Tensor]) -> None:
        """Compute and keep the log-mels of these clips."""
        for waveform in waveforms:
            logmel = self.compute(waveform.reshape(-1))
            self._store[_content_key(waveform)] = logmel
            self._added.append((waveform, logmel))
            address = self._address(waveform)
            if address is not None:
                self._by_address[address] = logmel

    def __call__(self, waveform: Tensor) -> Tensor:
        """Log-mel ``[n_mels, frames]`` of one ``[time]`` / ``[1, time]`` clip."""
        address = self._address(waveform)
        cached = self._by_address.get(address) if address is not None else None
        if cached is None:
            cached = self._store.get(_content_key(waveform))
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


def _random_crops(logmel: Tensor, length: int, n: int, rng: np.random.Generator) -> Tensor:
    """``n`` random windows ``[n, n_mels, length]`` of a log-mel ``[n_mels, F]``.

    A clip shorter than the window is repeated to fill it: padding would show the network a
    constant that never occurs in the (unpadded) evaluation windows.
    """
    frames = logmel.shape[-1]
    if frames < length:
        logmel = logmel.repeat(1, -(-length // frames))[:, :length]
        frames = length
    starts = rng.integers(0, frames - length + 1, size=n)
    return torch.stack([logmel[:, int(t) : int(t) + length] for t in starts])


class _SmallCNN(nn.Module):
    """``[B, n_mels, frames]`` log-mel → ``[B, n_classes]`` logits.

    The input is standardised per band with statistics of the training set (buffers, not per
    batch) and averaged over ``time_pool`` frames (10 ms hops are finer than birdsong needs);
    in training, SpecAugment masks (two frequency bands of up to 8 mel bins, two stretches of
    up to 0.3 s, to the mean) regularise it in every condition alike. Then conv blocks (3×3
    conv, batch norm, ReLU, 2×2 max-pool), max over frequency, mean + max over time, dropout
    and a linear layer.

    Laid out for the CPU, the same network: the blocks pool before the ReLU (the same values,
    as ReLU is monotonic, with the ReLU on a quarter of the elements) and run channels-last
    (oneDNN's convolutions, batch norms and pools are faster so: a training step of 32 crops
    on one thread 79 → 49 ms, measured).
    """

    def __init__(
        self,
        n_classes: int,
        n_mels: int,
        channels: Sequence[int] = (8, 16, 32, 64),
        time_pool: int = 2,
        spec_augment: bool = True,
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d((1, time_pool)) if time_pool > 1 else nn.Identity()
        layers: list[nn.Module] = []
        previous = 1
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.MaxPool2d(2),
                nn.ReLU(inplace=True),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * previous, n_classes))
        self.register_buffer("band_mean", torch.zeros(n_mels, 1))
        self.register_buffer("band_std", torch.ones(n_mels, 1))
        self.spec_augment = spec_augment
        self.time_mask = 30 // time_pool  # frames after pooling: 0.3 s at a 10 ms hop
        self.to(memory_format=torch.channels_last)

    def forward(self, logmel: Tensor) -> Tensor:
        x = self.pool(((logmel - self.band_mean) / self.band_std)[:, None])
        x = x.contiguous(memory_format=torch.channels_last)
        if self.training and self.spec_augment:
            for axis, width in ((2, 8), (3, self.time_mask), (2, 8), (3, self.time_mask)):
                x = torchaudio.functional.mask_along_axis_iid(x, width, 0.0, axis)
        x = self.features(x).amax(dim=2)  # [B, C, T']
        return self.head(torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


def _device(name: Literal["auto", "cpu", "cuda"]) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device")
    return torch.device(name)


def _native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA, or a CPU with AMX or AVX-512 BF16
    (elsewhere oneDNN would emulate it, slower than float32)."""
    if device.type == "cuda":
        return True
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu, no public API
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class CNNClipClassifier(_ClipClassifier):
    """Small CNN on log-mel crops, trained from scratch for a fixed step budget.

    Training runs in epochs (:func:`set_epoch` before each, so synthetic and augmented items are
    drawn afresh): every item of the dataset is read and featurised once per epoch and gives
    ``crops_per_item`` random crops, shuffled into batches, until ``steps`` batches. Reusing a
    fresh draw for several crops keeps synthesis and augmentation (~30 ms an item on a CPU)
    from dominating the training time; every condition gets the same steps, batch size and
    crops per item, and its class balance is whatever its dataset provides. The default
    budget, 600 steps, was chosen with ``--validation --cnn_steps 150 300 600`` (seed 100,
    3 folds, baseline: minority recall on held-out recordists 0.083 / 0.083 / 0.156). Seeded and
    single-process, so runs repeat exactly on one machine. ``precision="auto"`` trains with
    bfloat16 autocast (mixed precision: float32 weights, loss and evaluation) where the device
    computes bfloat16 natively (:func:`_native_bfloat16`: CUDA, AMX CPUs) and in float32
    elsewhere, so numbers from machines of the two kinds differ like runs of two seeds; the
    JSON records which. On the 2-core AMX machine a 600-step baseline fit took 23 s of CPU in
    bfloat16 against 34 s in float32.
    """

    def __init__(
        self,
        n_classes: int,
        seed: int = 0,
        config: FeatureConfig = FeatureConfig(),
        cache: LogMelCache | None = None,
        steps: int = 600,
        batch_size: int = 32,
        crops_per_item: int = 16,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        spec_augment: bool = True,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        precision: Literal["auto", "float32", "bfloat16"] = "auto",
    ) -> None:
        if steps < 1 or batch_size < 1 or crops_per_item < 1:
            raise ValueError(
                f"steps, batch_size and crops_per_item must be >= 1, got {steps}, "
                f"{batch_size}, {crops_per_item}"
            )
        super().__init__(n_classes, seed, config, cache)
        self.steps = steps
        self.batch_size = batch_size
        self.crops_per_item = crops_per_item
        self.lr = lr
        self.weight_decay = weight_decay
        self.spec_augment = spec_augment
        self.device = _device(device)
        if precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"precision must be auto, float32 or bfloat16, got {precision!r}")
        if precision == "auto":
            precision = "bfloat16" if _native_bfloat16(self.device) else "float32"
        self.precision = precision

    def _epoch(self, dataset: Dataset, epoch: int) -> tuple[list[Tensor], Tensor]:
        """Every item's log-mel ``[n_mels, F]`` and label, drawn for ``epoch``."""
        set_epoch(dataset, epoch)
        logmels, labels = [], []
        for index in range(len(dataset)):
            waveform, sample_rate, label = dataset[index]
            _check_rate(sample_rate, self.config)
            logmels.append(self.cache(waveform))
            labels.append(int(label))
        return logmels, torch.tensor(labels)

    def fit(self, dataset: Dataset) -> CNNClipClassifier:
        """Train on ``dataset`` ((waveform [1, T], sample_rate, label) items)."""
        torch.manual_seed(self.seed)  # weight init, dropout, SpecAugment masks
        rng = np.random.default_rng(self.seed)
        length = self.config.crop_frames
        model = _SmallCNN(self.n_classes, self.config.n_mels, spec_augment=self.spec_augment)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        autocast = torch.autocast(
            self.device.type, torch.bfloat16, enabled=self.precision == "bfloat16"
        )
        step, epoch = 0, 0
        while step < self.steps:
            logmels, labels = self._epoch(dataset, epoch)
            if epoch == 0:  # band statistics of the first draw
                frames = torch.cat(logmels, dim=-1)
                model.band_mean.copy_(frames.mean(-1, keepdim=True))
                model.band_std.copy_(frames.std(-1, keepdim=True).clamp_min(1e-3))
                model.to(self.device).train()
            crops = torch.cat([_random_crops(m, length, self.crops_per_item, rng) for m in logmels])
            targets = labels.repeat_interleave(self.crops_per_item)
            order = torch.from_numpy(rng.permutation(len(crops)))
            for batch in order.split(self.batch_size):
                with autocast:
                    logits = model(crops[batch].to(self.device))
                loss = nn.functional.cross_entropy(logits.float(), targets[batch].to(self.device))
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
            logits = self.model(windows.to(self.device)).float()
            return torch.softmax(logits, -1).cpu().numpy()


class BirdNETEmbeddings:
    """BirdNET window embeddings ``[windows, 1024]`` of a clip, memoised by content for chosen
    clips.

    BirdNET costs ~0.12 s per 3 s window on one core, so real recordings (the same in every
    split, condition and epoch) are embedded once by :meth:`add`; any other clip (an augmented
    or synthetic draw, new every epoch) is embedded on demand and not stored. ``n_embedded``
    counts the clips run through BirdNET. The judge (model load ~4 s) is built on first use.

    Args:
        judge: A BirdNET judge to share; default: one with ``threads`` interpreter threads.
        threads: Interpreter threads of the default judge.
    """

    def __init__(self, judge: BirdNETJudge | None = None, threads: int = 1) -> None:
        self._judge = judge
        self.threads = threads
        self._store: dict[bytes, np.ndarray] = {}
        self.n_embedded = 0

    @property
    def judge(self) -> BirdNETJudge:
        if self._judge is None:
            self._judge = BirdNETJudge(threads=self.threads)
        return self._judge

    def compute(self, waveform: Tensor, sample_rate: int) -> np.ndarray:
        """Embeddings ``[windows, 1024]`` of one ``[time]`` / ``[1, time]`` clip (3 s windows
        at 48 kHz, see :meth:`BirdNETJudge.windows`)."""
        self.n_embedded += 1
        audio = waveform.detach().reshape(-1).numpy()
        return self.judge.classify(audio, sample_rate).embeddings

    def add(self, waveforms: Sequence[Tensor], sample_rate: int = SAMPLE_RATE) -> None:
        """Embed and keep these clips (those already kept are not embedded again)."""
        for waveform in waveforms:
            key = _content_key(waveform, sample_rate)
            if key not in self._store:
                self._store[key] = self.compute(waveform, sample_rate)

    def __call__(self, waveform: Tensor, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        cached = self._store.get(_content_key(waveform, sample_rate))
        return cached if cached is not None else self.compute(waveform, sample_rate)


class BirdNETProbe:
    """Logistic regression on frozen BirdNET embeddings (a linear probe).

    Training goes over the dataset ``epochs`` times (:func:`set_epoch` first, so synthetic and
    augmented items are drawn and embedded afresh), and each item contributes one of its 3 s
    windows, drawn at random, per epoch: every item weighs the same, as in
    :class:`LinearClipClassifier`. A whole clip is scored by the mean of its windows'
    probabilities. ``C`` is scikit-learn's default, fixed a priori, never tuned on test folds.

    Args:
        n_classes: Number of classes.
        seed: Seeds the window draws.
        cache: Embeddings of the real clips (see :class:`BirdNETEmbeddings`); default: an empty
            one.
        epochs: Passes over the training set; embedding fresh draws dominates the cost.
        C: Inverse L2 strength of the standardised logistic regression.
    """

    def __init__(
        self,
        n_classes: int,
        seed: int = 0,
        cache: BirdNETEmbeddings | None = None,
        epochs: int = 2,
        C: float = 1.0,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.n_classes = n_classes
        self.seed = seed
        self.cache = cache if cache is not None else BirdNETEmbeddings()
        self.epochs = epochs
        self.C = C
        self.model = None

    def fit(self, dataset: Dataset) -> BirdNETProbe:
        """Fit on every item of ``dataset`` ((waveform [1, T], sample_rate, label) items)."""
        rng = np.random.default_rng(self.seed)
        rows, targets = [], []
        for epoch in range(self.epochs):
            set_epoch(dataset, epoch)
            for index in range(len(dataset)):
                waveform, sample_rate, label = dataset[index]
                embeddings = self.cache(waveform, sample_rate)
                rows.append(embeddings[int(rng.integers(0, embeddings.shape[0]))])
                targets.append(int(label))
        # Raw embeddings, not standardised: with a few rows per class, dimensions that barely
        # vary in training get blown up to noise by a scaler (measured: 3 of 5 held-out clips
        # wrong with one, none without).
        self.model = LogisticRegression(C=self.C, max_iter=3000, tol=1e-4)
        with threadpool_limits(limits=1, user_api="blas"):  # see LinearClipClassifier.fit
            self.model.fit(np.stack(rows), np.asarray(targets))
        return self

    def predict_proba(
        self, waveforms: Sequence[Tensor], sample_rate: int = SAMPLE_RATE
    ) -> np.ndarray:
        """Whole clips (``[time]`` or ``[1, time]``) → ``[n, n_classes]``."""
        if self.model is None:
            raise RuntimeError("fit() first")
        out = np.zeros((len(waveforms), self.n_classes))
        with threadpool_limits(limits=1, user_api="blas"):
            for i, waveform in enumerate(waveforms):
                proba = self.model.predict_proba(self.cache(waveform, sample_rate))
                out[i] = _full_proba(self.model.classes_, proba, self.n_classes).mean(0)
        return out


def make_classifier(
    name: Literal["linear", "cnn", "birdnet"],
    n_classes: int,
    seed: int,
    cache: LogMelCache | BirdNETEmbeddings | None = None,
    **options,
) -> LinearClipClassifier | CNNClipClassifier | BirdNETProbe:
    """``"linear"``, ``"cnn"`` (``cache``: a :class:`LogMelCache`) or ``"birdnet"``
    (``cache``: a :class:`BirdNETEmbeddings`) classifier; ``options`` go to its constructor."""
    expected = BirdNETEmbeddings if name == "birdnet" else LogMelCache
    if cache is not None and not isinstance(cache, expected):
        raise TypeError(f"classifier {name!r} needs cache of type {expected.__name__}")
    if name == "linear":
        return LinearClipClassifier(n_classes, seed=seed, cache=cache, **options)
    if name == "cnn":
        return CNNClipClassifier(n_classes, seed=seed, cache=cache, **options)
    if name == "birdnet":
        return BirdNETProbe(n_classes, seed=seed, cache=cache, **options)
    raise ValueError(f"unknown classifier {name!r} (linear, cnn, birdnet)")


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
