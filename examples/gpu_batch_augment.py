"""Train a small bird classifier on the GPU with minority-class DDSP songs added to its batches.

Batches of the bundled xeno-canto clips go to the device (CUDA when present, else the CPU);
``BatchDDSPSynth`` inside a ``torch_audiomentations.Compose`` mixes a new song of its species
into about half of the examples of the species the bank has models of (rendered on that device,
labels unchanged), then a log-mel CNN takes a step. Without models in ``--models``, quick tiny
models of the 2 smallest classes are trained first (see balance_dataloader.py).

    python examples/gpu_batch_augment.py [--models models/] [--epochs 1] [--steps 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchaudio
from balance_dataloader import DATA, QUICK_MODELS, BirdClips, quick_bank
from torch.utils.data import DataLoader
from torch_audiomentations import Compose, PolarityInversion

from ddsp_augment.augment.batch_synth import BatchDDSPSynth
from ddsp_augment.model.storage import is_model_dir
from ddsp_augment.sampling.bank import SpeciesBank


def classifier(n_classes: int, sample_rate: int) -> torch.nn.Module:
    """Log-mel front end and a small CNN: ``[batch, 1, time]`` → class logits."""
    return torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=320, n_mels=64),
        torchaudio.transforms.AmplitudeToDB(top_db=80.0),
        torch.nn.BatchNorm2d(1),  # dB values of tens: scaled before the convolutions
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, n_classes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=QUICK_MODELS)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch (all: None)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = BirdClips(DATA)
    has_models = args.models.is_dir() and any(is_model_dir(p) for p in args.models.iterdir())
    bank = SpeciesBank.load(args.models) if has_models else quick_bank(dataset, args.models)
    classes = sorted(set(dataset.targets))
    augment = Compose(
        [
            BatchDDSPSynth(bank, classes, action="mix", min_snr_db=0.0, max_snr_db=6.0, seed=0),
            PolarityInversion(p=0.5, output_type="dict"),
        ],
        output_type="dict",
    ).to(device)
    model = classifier(len(classes), dataset.sample_rate).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=2)
    print(f"{len(classes)} classes on {device}; songs added for {bank.species}")
    for epoch in range(args.epochs):
        for step, (waveforms, rates, species, _ids) in enumerate(loader):
            if args.steps is not None and step >= args.steps:
                break
            labels = torch.tensor([classes.index(s) for s in species], device=device)
            targets = torch.nn.functional.one_hot(labels, len(classes)).float()
            batch = augment(
                samples=waveforms.to(device),
                sample_rate=int(rates[0]),
                targets=targets[:, None, None, :],  # [batch, channels, frames, classes]
            )
            params = augment.transforms[0].transform_parameters
            # class_index covers the examples drawn this call (none drawn: nothing added)
            added = int((params["class_index"] >= 0).sum()) if params["should_apply"].any() else 0
            logits = model(batch.samples)
            loss = torch.nn.functional.cross_entropy(logits, batch.targets[:, 0, 0].argmax(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            print(f"epoch {epoch} step {step}: loss {loss.item():.3f}, {added} songs added")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
