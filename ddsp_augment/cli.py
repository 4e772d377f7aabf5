"""The ``ddsp-augment`` command: preprocess → train → generate → evaluate (→ explain).

Every option takes the original plan's underscore spelling and a dashed one (``--data_path`` or
``--data-path``). Defaults follow the plan's layout: ``data/raw/`` → ``data/processed/`` →
``models/`` → ``results/songs/`` and ``results/evaluation/``.

Problems with the user's input (missing folders, unreadable or foreign model files, invalid
option values) print ``error: <file>: <reason>`` and exit with status 2, without a traceback
(``--traceback`` shows one).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .constants import F0_MAX_HZ, F0_MIN_HZ, HOP_LENGTH, SAMPLE_RATE

if TYPE_CHECKING:
    from .sampling.gate import Judge
    from .sampling.scene import SceneConfig

__all__ = ["build_parser", "format_table", "main"]

_USER_ERROR = 2


class UserError(Exception):
    """A problem with the command's input, reported as ``error: <message>`` (exit status 2)."""


def _flags(name: str) -> list[str]:
    """``--data_path`` and ``--data-path`` (one string when the name has no underscore)."""
    underscore = f"--{name}"
    dashed = f"--{name.replace('_', '-')}"
    return [underscore] if dashed == underscore else [underscore, dashed]


class _Range(argparse.Action):
    """``MIN [MAX]`` → ``(min, max)``; one value means a fixed setting."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if len(values) > 2:
            parser.error(f"{option_string}: expected MIN [MAX], got {len(values)} values")
        setattr(namespace, self.dest, (values[0], values[-1]))


def _range_option(
    group: argparse._ArgumentGroup,
    name: str,
    help: str,
    metavar: tuple[str, str] = ("MIN", "MAX"),
) -> None:
    group.add_argument(
        *_flags(name), type=float, nargs="+", action=_Range, metavar=metavar, help=help
    )


def _pair(values: tuple[float, float]) -> str:
    return f"{values[0]:g} {values[1]:g}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned plain-text table; numbers are right-aligned, floats shown with 2 decimals."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.2f}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


# ---------------------------------------------------------------------------------------------
# Parser


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="analyse recordings (F0, loudness, segments) into feature files",
        description="Analyse <data_path>/<species>/*.{wav,flac,ogg,mp3} into "
        "<output_path>/<species>/*.npz and summary.json. Unchanged inputs are reused.",
    )
    p.add_argument(
        *_flags("data_path"), default="data/raw/", help="raw recordings (default %(default)s)"
    )
    p.add_argument(*_flags("output_path"), default="data/processed/", help="(default %(default)s)")
    p.add_argument(*_flags("sample_rate"), type=int, default=SAMPLE_RATE, help="model rate (Hz)")
    p.add_argument(*_flags("hop_length"), type=int, default=HOP_LENGTH, help="control hop")
    p.add_argument(*_flags("f0_method"), choices=("numba", "crepe"), default="numba")
    # --fmin/--fmax: the spellings of earlier releases.
    for name, old, default, role in (
        ("f_min", "--fmin", F0_MIN_HZ, "lowest"),
        ("f_max", "--fmax", F0_MAX_HZ, "highest"),
    ):
        p.add_argument(
            *_flags(name), old, dest=name, type=float, default=default, help=f"{role} F0 (Hz)"
        )
    p.add_argument(*_flags("jobs"), type=int, default=1, help="parallel workers")
    p.add_argument(*_flags("species"), nargs="+", metavar="NAME", help="only these species")
    p.add_argument(
        *_flags("screen"),
        choices=("none", "birdnet"),
        default="none",
        help="birdnet: leave out active stretches in which BirdNET hears another genus (a "
        "background bird the model would learn as the species' song; needs pip install "
        '"ddsp-augment[birdnet]")',
    )
    p.add_argument(
        *_flags("screen_location"),
        type=float,
        nargs=2,
        metavar=("LAT", "LON"),
        help="where the recordings were made (with --screen birdnet, for recordings without "
        "lat/lon in <data_path>/manifest.csv): only species BirdNET's range model places "
        "there count",
    )
    p.add_argument(
        *_flags("screen_min_score"),
        type=float,
        default=0.3,
        help="BirdNET score from which the other bird counts (default %(default)s)",
    )
    p.set_defaults(handler=_run_preprocess)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one DDSP model per species",
        description="Train a model per species from preprocessed recordings into "
        "<output_path>/<species>/ (weights, contour bank, backgrounds, history). Exit status 1 "
        "when a species collapsed (the others are still saved).",
    )
    p.add_argument(*_flags("data_path"), default="data/processed/", help="(default %(default)s)")
    p.add_argument(*_flags("output_path"), default="models/", help="(default %(default)s)")
    from .training.train import TrainSettings

    # None = TrainSettings' own default, so the defaults live in one place.
    defaults = TrainSettings()
    for name, kind, text in (
        ("epochs", int, "epochs"),
        ("steps_per_epoch", int, "batches per epoch"),
        ("batch_size", int, "crops per batch"),
        ("learning_rate", float, "Adam learning rate"),
        ("seed", int, "random seed"),
    ):
        p.add_argument(*_flags(name), type=kind, help=f"{text} (default {getattr(defaults, name)})")
    p.add_argument(
        *_flags("device"), choices=("auto", "cpu", "cuda"), help=f"(default {defaults.device})"
    )
    p.add_argument(*_flags("species"), nargs="+", metavar="NAME", help="only these species")
    p.add_argument(*_flags("jobs"), type=int, default=1, help="species trained in parallel")
    p.add_argument(
        *_flags("together"),
        nargs="?",
        choices=("auto", "yes", "no"),
        const="yes",
        default="auto",
        help="train all species at once, stacked (the same models; `--together` = yes). "
        "auto: on a CUDA device with --jobs 1, else one at a time (default %(default)s)",
    )
    p.add_argument(*_flags("resume"), action="store_true", help="continue from checkpoints")
    p.add_argument(
        *_flags("prior"),
        choices=("none", "shared"),
        default="none",
        help="shared: first train one model on every species' recordings, then start each "
        "species from it (helps species with few recordings; default %(default)s)",
    )
    p.set_defaults(handler=_run_train)


def _add_generate(sub: argparse._SubParsersAction) -> None:
    from .sampling.jitter import SYNTAXES, TEMPO_SCOPES, JitterConfig
    from .sampling.scene import SceneConfig

    p = sub.add_parser(
        "generate",
        help="synthesise new songs (wav + spectrogram + JSON sidecar each)",
        description="Write <output_path>/<species>/<species>_<seed>_<i>.{wav,png,json} and a "
        "contact sheet per species. Any file can be re-rendered exactly with --from_sidecar.",
    )
    p.add_argument(
        *_flags("model_checkpoint"),
        help="models/ or models/<species>/ (default models/; --from_sidecar: the recorded one)",
    )
    p.add_argument(
        *_flags("output_path"),
        help="(default results/songs/; with --from_sidecar: <sidecar folder>/regenerated/)",
    )
    p.add_argument(*_flags("n"), type=int, default=5, help="songs per species")
    p.add_argument(*_flags("seconds"), type=float, default=3.0, help="length of each song")
    p.add_argument(*_flags("seed"), type=int, default=0)
    p.add_argument(*_flags("sample_rate"), type=int, default=SAMPLE_RATE, help="output rate (Hz)")
    p.add_argument(*_flags("backend"), choices=("numba", "torch"), default="numba")
    p.add_argument(
        *_flags("noise"),
        choices=("recorded", "model"),
        default="recorded",
        help="what shapes the songs' noise: the recorded residual of the frames sung, or the "
        "decoder's noise branch",
    )
    p.add_argument(*_flags("species"), nargs="+", metavar="NAME", help="only these species")
    p.add_argument(*_flags("real_path"), help="real recordings (<species>/*) for contact sheets")
    p.add_argument(*_flags("from_sidecar"), metavar="JSON", help="regenerate the song of a sidecar")
    gate = p.add_argument_group(
        "quality gate", "redraw songs a judge does not give --min_confidence for their species"
    )
    gate.add_argument(
        *_flags("gate"),
        choices=("light", "birdnet"),
        help="'light': a classifier fitted on --real_path's recordings (of 2+ species; needs "
        "the [gate] extra); 'birdnet': BirdNET (the [birdnet] extra)",
    )
    gate.add_argument(*_flags("min_confidence"), type=float, default=0.5, help="(default 0.5)")
    gate.add_argument(
        *_flags("max_draws"), type=int, default=8, help="clips drawn at most per song (default 8)"
    )

    jitter = p.add_argument_group(
        "jitter", "JitterConfig fields; unset ones keep each species' own measured variation"
    )
    for field in dataclasses.fields(JitterConfig):
        default = field.default
        if isinstance(default, bool):
            jitter.add_argument(
                *_flags(field.name), dest=field.name, action="store_true", default=None
            )
            jitter.add_argument(*_flags(f"no_{field.name}"), dest=field.name, action="store_false")
        elif isinstance(default, tuple):
            _range_option(jitter, field.name, f"(species default; built-in {_pair(default)})")
        elif field.name == "syntax":
            jitter.add_argument(
                *_flags(field.name),
                choices=SYNTAXES,
                help=f"syllable order: the species' learned chain or shuffled (default {default})",
            )
        elif field.name == "tempo_scope":
            jitter.add_argument(
                *_flags(field.name),
                choices=TEMPO_SCOPES,
                help="what a tempo change stretches: the gaps between syllables or the whole "
                f"phrase (default {default})",
            )
        else:
            jitter.add_argument(
                *_flags(field.name), type=float, help=f"(species default; built-in {default:g})"
            )

    scene = p.add_argument_group("environment (default: the clean bird)")
    defaults = SceneConfig()
    _range_option(scene, "distance_m", "distance to the bird (m), spreading + air absorption")
    _range_option(scene, "reverb", "reverb time RT60 (s)", ("RT60_MIN", "RT60_MAX"))
    _range_option(scene, "wet", f"reverb mix (default {_pair(defaults.wet)})")
    for name in ("wind", "rain"):
        scene.add_argument(
            *_flags(name),
            type=float,
            nargs="?",
            const=1.0,
            metavar="P",
            help=f"add {name} (with probability P, default 1)",
        )
        default = getattr(defaults, f"{name}_snr_db")
        _range_option(scene, f"{name}_snr_db", f"bird-to-{name} ratio (default {_pair(default)})")
    scene.add_argument(
        *_flags("background"),
        choices=("none", "measured"),
        help="noise under the bird: 'measured' = a training recording's background "
        "(default none, or measured when --snr_db is given)",
    )
    _range_option(
        scene, "snr_db", "bird-to-background ratio (default: the background's recorded level)"
    )
    p.set_defaults(handler=_run_generate)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare generated songs with real recordings",
        description="Per species, distances between synthetic and real recordings, each next to "
        "the same distance between two halves of the real recordings. Writes evaluation.json, "
        "evaluation.md and distribution plots.",
    )
    p.add_argument(
        *_flags("generated_path"), default="results/songs/", help="(default %(default)s)"
    )
    p.add_argument(
        *_flags("real_path"),
        default="data/processed/",
        help="real recordings: raw (<species>/*.wav...) or preprocessed (default %(default)s)",
    )
    p.add_argument(*_flags("model_checkpoint"), help="models/: adds resynthesis F0 accuracy")
    p.add_argument(
        *_flags("output_path"), default="results/evaluation/", help="(default %(default)s)"
    )
    p.add_argument(*_flags("species"), nargs="+", metavar="NAME", help="only these species")
    p.add_argument(*_flags("seed"), type=int, default=0, help="seed of the real-vs-real split")
    p.add_argument(
        *_flags("judge"),
        choices=("none", "birdnet"),
        default="none",
        help="birdnet: BirdNET's top-1/top-5 hit rate and confidence in the right species, real "
        'and generated side by side (needs pip install "ddsp-augment[birdnet]")',
    )
    p.set_defaults(handler=_run_evaluate)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="draw what each species model learned (one PNG page per species + index.html)",
        description="Per species: real clip, resynthesis and generated songs as spectrograms; "
        "F0/voicing/loudness contours and background floor; decoder controls; the decoder's "
        "filtered noise next to the recorded residual of the same frames; the learned "
        "reverb and its decay; training curves; the jitter ranges. Writes "
        "<output_path>/<species>.png and index.html. Without --real_path the model's own "
        "training contours stand in for a real clip.",
    )
    p.add_argument(
        *_flags("model_checkpoint"),
        default="models/",
        help="models/ or models/<species>/ (default %(default)s)",
    )
    p.add_argument(*_flags("real_path"), help="real recordings (<species>/* audio or .npz)")
    p.add_argument(*_flags("output_path"), default="results/explain/", help="(default %(default)s)")
    p.add_argument(*_flags("seed"), type=int, default=0, help="seed of the generated songs")
    p.add_argument(*_flags("seconds"), type=float, default=3.0, help="length of each clip")
    p.add_argument(*_flags("dpi"), type=int, default=100, help="PNG resolution")
    p.add_argument(*_flags("species"), nargs="+", metavar="NAME", help="only these species")
    p.set_defaults(handler=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from .evaluation.explain import explain_models

    if args.real_path is not None:
        _need_dir(args.real_path, "real recordings", "expected <real_path>/<species>/*")
    pages = explain_models(
        args.model_checkpoint,
        args.output_path,
        real_path=args.real_path,
        seed=args.seed,
        seconds=args.seconds,
        species=args.species,
        dpi=args.dpi,
    )
    print(format_table(["species", "page"], [[name, str(path)] for name, path in pages.items()]))
    print(f"index: {Path(args.output_path) / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddsp-augment",
        description="Balance bird-sound datasets with per-species DDSP song synthesis.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_preprocess(sub)
    _add_train(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    _add_explain(sub)
    return parser


# ---------------------------------------------------------------------------------------------
# Commands


def _need_dir(path: str, what: str, hint: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(
            f"{path}: {'not a folder' if folder.exists() else 'no such folder'} ({what}; {hint})"
        )
    return folder


def _run_preprocess(args: argparse.Namespace) -> int:
    from .training.preprocess import PreprocessSettings, preprocess_folder

    data = _need_dir(args.data_path, "raw recordings", "expected <data_path>/<species>/*.wav")
    settings = PreprocessSettings(
        sample_rate=args.sample_rate,
        hop_length=args.hop_length,
        f0_method=args.f0_method,
        f_min=args.f_min,
        f_max=args.f_max,
    )
    screen = None
    if args.screen == "birdnet":
        from .evaluation.birdnet import BirdNETScreen, birdnet_available

        if not birdnet_available():
            raise UserError('--screen birdnet needs the extra: pip install "ddsp-augment[birdnet]"')
        location = None if args.screen_location is None else tuple(args.screen_location)
        if location is None:
            _need_locations(data, args.species)
        screen = BirdNETScreen(location, args.screen_min_score)
    with warnings.catch_warnings():
        # The summary below lists skipped files and screened stretches; the warnings would
        # only repeat it.
        warnings.filterwarnings("ignore", message="preprocess (skipped|left out)")
        summary = preprocess_folder(
            data, args.output_path, settings, args.jobs, args.species, screen=screen
        )
    headers = ["species", "files", "seconds", "voiced seconds", "skipped"]
    rows = [
        [name, s["files"], round(s["seconds"], 1), round(s["voiced_seconds"], 1), len(s["skipped"])]
        + ([round(s["screened_seconds"], 1)] if screen else [])
        for name, s in summary.items()
    ]
    print(format_table(headers + (["screened seconds"] if screen else []), rows))
    skipped = [item for s in summary.values() for item in s["skipped"]]
    for item in skipped[:5]:
        print(f"skipped {item['reason']}")
    if len(skipped) > 5:
        print(f"... and {len(skipped) - 5} more")
    screened = [item for s in summary.values() for item in s["screened"]]
    for item in screened[:10]:
        print(
            f"left out {item['file']} {item['start_s']:.2f}-{item['end_s']:.2f} s: "
            f"heard {item['heard']}"
        )
    if len(screened) > 10:
        print(f"... and {len(screened) - 10} more")
    print(f"summary: {Path(args.output_path) / 'summary.json'}")
    return 0


def _need_locations(data: Path, species: Sequence[str] | None) -> None:
    """Without ``--screen_location``, every recording to screen needs its own in the manifest."""
    from .io import scan_folder
    from .training.preprocess import read_locations

    located = read_locations(data)
    files = [
        p.relative_to(data).as_posix() for p, s in scan_folder(data) if not species or s in species
    ]
    missing = [f for f in files if f not in located]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UserError(
            "--screen birdnet needs where the recordings were made (BirdNET is trusted only "
            "about the birds that live there): --screen_location LAT LON, or latitude and "
            f"longitude columns in {data / 'manifest.csv'} ({len(missing)} of {len(files)} "
            f"recordings have none: {shown})"
        )


def _run_train(args: argparse.Namespace) -> int:
    from .training.train import TrainSettings, train_folder

    _need_dir(args.data_path, "preprocessed recordings", "run `ddsp-augment preprocess` first")
    overrides = {
        name: getattr(args, name)
        for name in ("epochs", "steps_per_epoch", "batch_size", "learning_rate", "seed", "device")
        if getattr(args, name) is not None
    }
    settings = TrainSettings(**overrides)
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is available (use --device cpu or auto)")
    together = {"yes": True, "no": False, "auto": "auto"}[args.together]
    if together is True and args.jobs != 1:
        raise UserError("--together trains all species in one process: drop --jobs")
    results = train_folder(
        args.data_path,
        args.output_path,
        settings,
        args.species,
        args.jobs,
        args.resume,
        prior=args.prior,
        together=together,
    )
    rows = [
        [
            r["species"],
            # The star points to the warnings printed under the table.
            r["status"] + ("*" if r.get("warnings") else ""),
            r.get("epoch"),
            r.get("val_spectral_distance"),
            r.get("f0_within_50_cents"),
            r.get("loudness_mae_db"),
            r.get("restarts"),
            r.get("wall_seconds"),
        ]
        for r in results
    ]
    headers = [
        "species",
        "status",
        "best epoch",
        "val spectral",
        "F0 <=50c",
        "loud MAE dB",
        "restarts",
        "seconds",
    ]
    print(format_table(headers, rows))
    for r in results:
        if r["status"] != "trained":
            print(f"{r['species']}: {r.get('reason', r['status'])}")
        for warning in r.get("warnings", []):
            print(f"* {r['species']}: {warning}")
    print(
        f"models: {args.output_path} (summary: {Path(args.output_path) / 'training_summary.json'})"
    )
    return 0 if all(r["status"] == "trained" for r in results) else 1


def _jitter_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .sampling.jitter import JitterConfig

    overrides = {}
    for field in dataclasses.fields(JitterConfig):
        value = getattr(args, field.name)
        if value is not None:
            overrides[field.name] = value
    return overrides


def _scene(args: argparse.Namespace) -> SceneConfig | None:
    """The scene the environment options describe; None (the clean bird) when none is given."""
    from .sampling.scene import SceneConfig

    ranges = {
        "distance_m": args.distance_m,
        "rt60_s": args.reverb,
        "wet": args.wet,
        "wind_snr_db": args.wind_snr_db,
        "rain_snr_db": args.rain_snr_db,
        "snr_db": args.snr_db,
    }
    values: dict[str, Any] = {k: v for k, v in ranges.items() if v is not None}
    if args.wind is not None:
        values["p_wind"] = args.wind
    if args.rain is not None:
        values["p_rain"] = args.rain
    if args.background is not None or values:
        values["background"] = args.background or ("measured" if args.snr_db else "none")
    return SceneConfig(**values) if values else None


def _run_generate(args: argparse.Namespace) -> int:
    from .sampling.gate import GateStats
    from .sampling.generate import generate_songs, regenerate

    if args.from_sidecar:
        wav, identical = regenerate(args.from_sidecar, args.output_path, args.model_checkpoint)
        state = (
            "identical to the recorded audio" if identical else "DIFFERS from the recorded audio"
        )
        print(f"regenerated {wav} ({state})")
        return 0 if identical else 1
    stats = GateStats()
    gate = _generate_gate(args)
    written = generate_songs(
        args.model_checkpoint or "models/",
        args.output_path or "results/songs/",
        n=args.n,
        seconds=args.seconds,
        seed=args.seed,
        sample_rate=args.sample_rate,
        backend=args.backend,
        species=args.species,
        jitter=_jitter_overrides(args),
        scene=_scene(args),
        real_path=args.real_path,
        noise=args.noise,
        gate=gate,
        max_draws=args.max_draws,
        gate_stats=stats,
    )
    out = Path(args.output_path or "results/songs/")
    rows = [
        [name, len(paths), str(out / name), f"{name}_{args.seed}_contact_sheet.png"]
        for name, paths in written.items()
    ]
    print(format_table(["species", "songs", "folder", "contact sheet"], rows))
    if gate is not None:
        print(
            f"gate ({args.gate}, min_confidence {args.min_confidence:g}): {stats.accepted} of "
            f"{stats.items} songs accepted, {stats.draws} clips drawn "
            f"({stats.acceptance_rate:.2f} accepted), {stats.seconds_per_item:.2f} s a song; "
            "each sidecar holds its verdict"
        )
    return 0


def _generate_gate(args: argparse.Namespace) -> tuple[Judge, float] | None:
    """``generate --gate``'s (judge, min_confidence), or None."""
    if args.gate is None:
        return None
    if not 0 <= args.min_confidence <= 1:
        raise UserError(f"--min_confidence must be in [0, 1], got {args.min_confidence}")
    if args.gate == "birdnet":
        from .evaluation.birdnet import BirdNETJudge

        return BirdNETJudge().confidence, args.min_confidence
    import numpy as np

    from .evaluation.clip_judge import RealClipJudge
    from .io import AudioError, load_audio, scan_folder
    from .model.storage import find_model_dirs

    if not args.real_path:
        raise UserError("--gate light fits its judge on real recordings: give --real_path")
    clips: dict[str, list[np.ndarray]] = {}
    for path, species in scan_folder(_need_dir(args.real_path, "real recordings", "<species>/*")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # clipping notes: the judge only reads spectra
                clips.setdefault(species, []).append(load_audio(path, SAMPLE_RATE)[0])
        except AudioError as error:
            print(f"--gate light: skipping {error}", file=sys.stderr)
    judge = RealClipJudge(clips, SAMPLE_RATE)
    wanted = find_model_dirs(args.model_checkpoint or "models/", args.species)
    unknown = sorted(set(wanted) - set(judge.species))
    if unknown:
        raise UserError(
            f"--gate light: no real recordings of {', '.join(unknown)} in {args.real_path}"
        )
    return judge.confidence, args.min_confidence


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate, markdown_report

    _need_dir(args.generated_path, "generated songs", "run `ddsp-augment generate` first")
    _need_dir(args.real_path, "real recordings", "raw <species>/*.wav or preprocessed folder")
    report = evaluate(
        args.generated_path,
        args.real_path,
        args.output_path,
        model_path=args.model_checkpoint,
        species=args.species,
        seed=args.seed,
        judge=args.judge,
    )
    print(markdown_report(report))
    out = Path(args.output_path)
    print(f"report: {out / 'evaluation.md'}, {out / 'evaluation.json'}; plots: {out}/*.png")
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point


def _message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ddsp-augment`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from .model.storage import ModelFileError

    parser = build_parser()
    args = parser.parse_args(argv)
    user_errors = (
        UserError,
        FileNotFoundError,
        NotADirectoryError,
        ModelFileError,
        ValueError,
        KeyError,
    )
    try:
        return args.handler(args)
    except user_errors as error:
        if args.traceback:
            raise
        print(f"error: {_message(error)}", file=sys.stderr)
        return _USER_ERROR
    except KeyboardInterrupt:
        hint = " (continue with `ddsp-augment train --resume`)" if args.command == "train" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
