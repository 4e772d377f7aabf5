"""Copy the tutorial's pictures from a run of ``docs/tutorial.sh`` into ``docs/tutorial/``.

Each picture is scaled down and reduced to a 96-colour palette: spectrograms keep their look and
the pictures together stay well under 1.5 MB.

    python docs/tutorial_pictures.py [--workdir tutorial/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parent / "tutorial"
# (source under the run's folder, picture name, width in pixels, share of the height kept)
PICTURES = (
    (
        "results/songs/Fringilla_coelebs/Fringilla_coelebs_0_contact_sheet.png",
        "contact_sheet",
        640,
        1.0,
    ),
    ("results/explain/Parus_major.png", "explain_Parus_major", 1100, 1.0),
    # The top of the page: title, spectrograms and contours (rows 1-2 of 7).
    ("results/explain-no-real/Parus_major.png", "explain_no_real_top", 1000, 0.33),
    ("results/evaluation/Fringilla_coelebs_distributions.png", "evaluation", 900, 1.0),
)


def shrink(source: Path, target: Path, width: int, keep: float) -> int:
    """Crop ``source`` to its top ``keep`` share, scale to ``width``, save a palette PNG."""
    image = Image.open(source).convert("RGB")
    image = image.crop((0, 0, image.width, round(image.height * keep)))
    height = round(image.height * width / image.width)
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    image.quantize(96, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    return target.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("tutorial"))
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    total = 0
    for source, name, width, keep in PICTURES:
        size = shrink(args.workdir / source, OUT / f"{name}.png", width, keep)
        print(f"{name}.png: {size / 1000:.0f} kB")
        total += size
    print(f"total: {total / 1000:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
