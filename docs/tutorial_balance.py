"""Tutorial step 6: balance a PyTorch DataLoader with the two species models just trained.

The dataset is a plain torchaudio-style map dataset over ``data/raw/<species>/*`` (items
``(waveform [1, time], sample_rate, label)``); :class:`DDSPBalancedDataset` tops the rarer
species up to the larger one with synthetic songs, fresh each epoch.

    python docs/tutorial_balance.py [--data data/raw/] [--models models/] [--epochs 2]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ddsp_augment import DDSPBalancedDataset, load_audio, scan_folder

SAMPLE_RATE = 32000
SECONDS = 3.0


class FolderClips(Dataset):
    """``<root>/<species>/*`` → ``(waveform [1, 3 s], 32000, species)``, cut or zero-padded."""

    def __init__(self, root: Path) -> None:
        self.files = scan_folder(root)
        self.n_samples = int(SECONDS * SAMPLE_RATE)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        path, species = self.files[index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a clipping note on a field recording
            audio, _ = load_audio(path, SAMPLE_RATE)
        audio = np.pad(audio[: self.n_samples], (0, max(0, self.n_samples - audio.shape[0])))
        return torch.from_numpy(audio)[None], SAMPLE_RATE, species


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/raw"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    dataset = FolderClips(args.data)
    balanced = DDSPBalancedDataset(dataset, str(args.models), target="max", seed=0)
    for label, count in balanced.class_counts().items():
        print(f"{label:<20} real {count.real:>3}  synthetic {count.synthetic:>3}")
    loader = DataLoader(balanced, batch_size=4, shuffle=True, num_workers=2)
    for epoch in range(args.epochs):
        balanced.set_epoch(epoch)  # new synthetic songs every epoch
        labels = [label for _, _, batch_labels in loader for label in batch_labels]
        counts = {name: labels.count(name) for name in sorted(set(labels))}
        print(f"epoch {epoch}: {len(labels)} items per epoch, per class {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
