"""DDSPSynth inside an audiomentations pipeline, applied to a real recording.

Re-sings the clip with its species' model (keeping the recording's background), then applies
ordinary audiomentations transforms; writes the result as wav and a before/after spectrogram PNG.
Without models in ``--models``, quick tiny models are trained first (see balance_dataloader.py).

    python examples/compose_transform.py [--input clip.mp3 --species Turdus_merula] [--out results/]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from audiomentations import AddGaussianSNR, Compose, Gain, OneOf, PolarityInversion
from balance_dataloader import DATA, QUICK_MODELS, ROOT, BirdClips, quick_bank

from ddsp_augment.augment.ddsp_synth import DDSPSynth
from ddsp_augment.io import load_audio, save_audio
from ddsp_augment.model.storage import is_model_dir
from ddsp_augment.plotting import stacked_spectrograms
from ddsp_augment.sampling.bank import SpeciesBank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=QUICK_MODELS)
    parser.add_argument("--input", type=Path, help="a recording (default: a clip of the species)")
    parser.add_argument("--species", help="bank species to re-sing with (default: the first)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "compose_transform")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    has_models = args.models.is_dir() and any(is_model_dir(p) for p in args.models.iterdir())
    bank = SpeciesBank.load(args.models) if has_models else quick_bank(BirdClips(DATA), args.models)
    species = args.species or bank.species[0]
    path = args.input or sorted((DATA / species).glob("*.mp3"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping notes on field recordings
        audio, rate = load_audio(path)

    augment = Compose(
        [
            DDSPSynth(
                bank, species, keep_background=True, max_pitch_cents=50.0, p=1.0, seed=args.seed
            ),
            OneOf([Gain(min_gain_db=-6.0, max_gain_db=6.0, p=1.0), PolarityInversion(p=1.0)]),
            AddGaussianSNR(min_snr_db=25.0, max_snr_db=40.0, p=0.5),
        ]
    )
    print(augment)
    out = augment(samples=audio, sample_rate=rate)
    print("DDSPSynth parameters:", augment.transforms[0].serialize_parameters())

    args.out.mkdir(parents=True, exist_ok=True)
    wav = args.out / f"{path.stem}_augmented.wav"
    png = args.out / f"{path.stem}_before_after.png"
    save_audio(wav, out, rate)
    stacked_spectrograms(
        [(f"before: {path.name}", audio), (f"after: DDSPSynth({species}) + Gain/Polarity", out)],
        rate,
        png,
    )
    print(f"wrote {wav} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
