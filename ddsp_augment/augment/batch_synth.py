"""`BatchDDSPSynth`: a torch-audiomentations transform that adds DDSP songs of minority classes
to whole training batches, rendered on the batch's device.

Needs the ``torch-audiomentations`` extra (``pip install ddsp-augment[gpu-augment]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..checks import Draws, NoiseSource, check_draws, check_noise
from ..sampling.bank import SpeciesBank
from ..sampling.scene import SceneConfig

try:
    from torch_audiomentations.core.transforms_interface import BaseWaveformTransform
    from torch_audiomentations.utils.object_dict import ObjectDict
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "BatchDDSPSynth needs torch-audiomentations: pip install 'ddsp-augment[gpu-augment]'"
    ) from error

__all__ = ["BatchDDSPSynth"]

Action = Literal["mix", "replace"]


def _rms(x: Tensor) -> Tensor:
    """Per-example RMS over all channels and samples: ``[batch, channels, time]`` → ``[batch]``."""
    return x.double().square().mean(dim=(1, 2)).sqrt()


class BatchDDSPSynth(BaseWaveformTransform):
    """For each selected example of a minority class, a new song of that class's species.

    Follows torch-audiomentations: ``samples [batch, channels, time]``, ``sample_rate``,
    ``targets [batch, channels, frames, classes]`` (required: they say which class each example
    is), per-example probability ``p`` (drawn, as in torch-audiomentations, from torch's global
    generator), ``output_type="dict"``; usable inside ``torch_audiomentations.Compose``.

    An example is a candidate when one of its classes (any frame, any channel positive in
    ``targets``) is a ``minority`` class; with several, one is drawn. Its song — ``time`` samples
    at ``sample_rate`` from :meth:`SpeciesBank.sample` with the torch backend on the batch's
    device, placed in ``scene`` — is then

    * ``action="mix"``: added at an example-to-song ratio drawn uniformly in
      [``min_snr_db``, ``max_snr_db``] dB (RMS over all channels; every channel gets the same
      song). The class is already in the example's targets: they stay as they are. A silent
      example gets nothing added.
    * ``action="replace"``: put in place of the example (on every channel); its targets become
      that class alone, on every frame.

    Examples of other classes pass unchanged. ``seed`` fixes the songs and SNRs (one child seed
    per call); the p-draws follow torch's generator.

    Args:
        bank: A :class:`SpeciesBank` or its directory.
        classes: Class names in the order of the targets' last axis.
        minority: Classes to augment (each needs a bank model). None: every class with one.
        action: ``"mix"`` or ``"replace"`` (above).
        min_snr_db / max_snr_db: Example-to-song ratio range of ``mix``, dB.
        scene: Where the songs are heard (None: the clean bird; see :class:`SceneConfig`).
        p: Probability of applying the transform to each example.
        sample_rate: Default sample rate when the call gives none.
        seed: Seed of the transform's own generator.
        output_type: ``"dict"`` (an ``ObjectDict`` with samples and targets) or ``"tensor"``.
        draws: Where the songs' bulk noise is drawn (:meth:`SpeciesBank.sample`): ``"host"``
            (the numba path's songs) or ``"device"`` (on the batch's device: on a GPU, the
            CPU only composes contours).
        noise: What shapes the songs' noise: "model" (the decoder's noise branch, the default
            for classifier training, as in ``DDSPBalancedDataset``) or "recorded" (the
            recorded residual; see ``SpeciesBank.sample``).
    """

    supported_modes = {"per_example"}
    supports_multichannel = True
    requires_sample_rate = True
    supports_target = True
    requires_target = True

    def __init__(
        self,
        bank: SpeciesBank | str | Path,
        classes: Sequence[str],
        minority: Iterable[str] | None = None,
        action: Action = "mix",
        min_snr_db: float = 0.0,
        max_snr_db: float = 10.0,
        scene: SceneConfig | None = None,
        p: float = 0.5,
        sample_rate: int | None = None,
        seed: int | None = None,
        output_type: Literal["dict", "tensor"] | None = "dict",
        draws: Draws = "host",
        noise: NoiseSource = "model",
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        super().__init__(mode="per_example", p=p, sample_rate=sample_rate, output_type=output_type)
        self.bank = bank if isinstance(bank, SpeciesBank) else SpeciesBank.load(bank)
        self.classes = list(classes)
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(f"classes must be distinct names, got {self.classes}")
        wanted = [c for c in self.classes if c in self.bank] if minority is None else list(minority)
        unknown = [c for c in wanted if c not in self.classes]
        missing = [c for c in wanted if c not in self.bank]
        if unknown or missing or not wanted:
            raise ValueError(
                f"minority classes must be among classes and have a bank model; got {wanted}: "
                f"not in classes {unknown}, no model {missing} (bank has {self.bank.species})"
            )
        self.minority = wanted
        if action not in ("mix", "replace"):
            raise ValueError(f"action must be 'mix' or 'replace', got {action!r}")
        if min_snr_db > max_snr_db:
            raise ValueError(f"min_snr_db must be <= max_snr_db, got {min_snr_db}, {max_snr_db}")
        self.action = action
        self.snr_db = (float(min_snr_db), float(max_snr_db))
        self.scene = scene
        self.draws = check_draws(draws)
        self.noise = check_noise(noise)
        self._seeds = np.random.SeedSequence(seed)

    def randomize_parameters(
        self,
        samples: Tensor,
        sample_rate: int | None = None,
        targets: Tensor | None = None,
        target_rate: int | None = None,
    ) -> None:
        """Per selected example: the class whose song it gets (-1: none) and the SNR (dB)."""
        if targets.shape[-1] != len(self.classes):
            raise ValueError(
                f"targets have {targets.shape[-1]} classes on their last axis, "
                f"classes names {len(self.classes)}"
            )
        rng = np.random.default_rng(self._seeds.spawn(1)[0])
        present = (targets.amax(dim=(1, 2)) > 0).cpu().numpy()  # [batch, classes]
        columns = [self.classes.index(c) for c in self.minority]
        chosen = np.full(samples.shape[0], -1, np.int64)
        for i, row in enumerate(present[:, columns]):
            if row.any():
                chosen[i] = columns[int(rng.choice(np.flatnonzero(row)))]
        self.transform_parameters["class_index"] = chosen
        self.transform_parameters["snr_db"] = rng.uniform(*self.snr_db, samples.shape[0])
        self.transform_parameters["song_seed"] = rng.integers(2**63)

    def apply_transform(
        self,
        samples: Tensor,
        sample_rate: int | None = None,
        targets: Tensor | None = None,
        target_rate: int | None = None,
    ) -> ObjectDict:
        samples, targets = samples.clone(), targets.clone()
        chosen = self.transform_parameters["class_index"]
        snr_db = self.transform_parameters["snr_db"]
        # One seed per class: a class's songs do not depend on which other classes are drawn.
        seeds = np.random.SeedSequence(int(self.transform_parameters["song_seed"]))
        seeds = seeds.spawn(len(self.classes))
        n_samples = samples.shape[-1]
        for column in np.unique(chosen[chosen >= 0]):
            rows = np.flatnonzero(chosen == column)
            songs = self.bank.sample(
                self.classes[column],
                n=len(rows),
                seconds=n_samples / sample_rate,
                sample_rate=sample_rate,
                seed=seeds[column],
                backend="torch",
                device=samples.device,
                scene=self.scene,
                draws=self.draws,
                noise=self.noise,
            )
            songs = torch.from_numpy(songs).to(samples.device, samples.dtype)[:, None, :]
            index = torch.as_tensor(rows, device=samples.device)
            if self.action == "replace":
                samples[index] = songs.expand(-1, samples.shape[1], -1)
                targets[index] = 0
                targets[index, ..., int(column)] = 1
                continue
            ratio = torch.as_tensor(10.0 ** (snr_db[rows] / 20.0), device=samples.device)
            song_rms = _rms(songs).clamp_min(1e-12)
            gain = (_rms(samples[index]) / (song_rms * ratio)).to(samples.dtype)
            samples[index] += gain[:, None, None] * songs
        return ObjectDict(
            samples=samples, sample_rate=sample_rate, targets=targets, target_rate=target_rate
        )
