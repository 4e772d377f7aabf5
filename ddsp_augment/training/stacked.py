"""Many species trained at once: models of one architecture stacked into one set of tensors
(``torch.func.stack_module_state``) and run with ``torch.func.vmap``, so one step trains them all
and a GPU gets work enough to be busy.

Each species keeps everything :func:`.train.train_species` gives it: its split, its crop sampler
and noise generator seeded as alone (so it draws the same crops and noise), its own Adam moments,
step count and learning rate (one Adam over stacked tensors would share the step count, which
restarts reset per species), its own gradient clipping, validation, early stopping, collapse
restarts and failure (``failed.json``, the others go on), and the same model directory. It shares
one forward/backward/update per step and one checkpoint file per group. Species whose
architectures differ (decoder settings, crop length) train in separate groups. A species that
stopped (early, or failed) stays in the stack until the group ends, computed but not updated:
every other species' arithmetic, and so its weights, stay bit for bit what they would be had it
kept going (dropping it would change the batch shapes and with them float rounding).

The decoder and reverb (the parts with weights) run under ``vmap`` with each species' weights and
loudness normalisation; the synthesisers, which have no weights, and the loss run on all the
species' crops as one flat batch (the loss per species, ``groups``). A step equals
:func:`.train.train_species`' up to float32 rounding (vmapped convolutions and longer sums round
differently: losses within 5e-6, gradients within 1e-3 of their norm, 3e-2 on the reverb taps).
Adam turns rounding-level gradients into ±lr steps, so over many steps the weights drift apart
as train_species' own do between one and two threads, with the same validation metrics.

On a CPU, where the work per step is already large enough, stacking measured no faster than
one species at a time (README); it is for GPUs, where one small model leaves the device idle.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..model.decoder import Controls
from ..model.losses import MultiScaleSpectralLoss
from ..model.species_model import SpeciesModel
from ..model.storage import (
    CHECKPOINT_FILE,
    has_checkpoint,
    load_weights,
    read_checkpoint,
    restore_generator,
    write_checkpoint,
)
from .preprocess import Recording
from .train import (
    CollapseError,
    TrainResult,
    TrainSettings,
    _finish,
    _prepare,
    _Progress,
    _resolve_device,
    _Species,
    _validate,
    _write_history,
)

__all__ = ["train_stacked"]

# torch.optim.Adam's defaults, which train_species uses.
_BETAS, _EPS = (0.9, 0.999), 1e-8
# train_species clips each species' gradient norm to this.
_MAX_GRAD_NORM = 3.0


def _stack_key(run: _Species) -> tuple:
    """What species must share to be stacked: the architecture (the decoder config but its
    loudness normalisation, which each species carries as a buffer), the crop length and the
    loss's lowest frequency (from the analysis band)."""
    config = {k: v for k, v in run.config.to_dict().items() if not k.startswith("loudness_")}
    return (tuple(sorted(config.items())), run.sampler.crop_frames, run.loss_f_min)


def train_stacked(
    recordings: Sequence[Sequence[Recording]],
    output_path: str | Path,
    settings: TrainSettings | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = tqdm.write,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[TrainResult | CollapseError]:
    """Train one model per species (``recordings[i]``: one species' recordings) into
    ``output_path/<species>/``, species of one :func:`_stack_key` together.

    Returns, in input order, each species' :class:`.train.TrainResult` (its ``wall_seconds``: the
    whole group's), or the :class:`.train.CollapseError` that failed it (its folder then holds
    ``failed.json``). A group's training state goes to
    ``output_path/checkpoints/stacked-<hash of its species>/`` after every epoch; ``resume``
    continues from it when the same species are trained again (per-species checkpoints of
    :func:`.train.train_species` are not read). ``on_epoch_end(epoch)`` runs after each group
    epoch's checkpoint.
    """
    settings = settings or TrainSettings()
    output_path = Path(output_path)
    if not recordings or any(not recs for recs in recordings):
        raise ValueError("recordings must hold at least one recording for each species")
    names = [recs[0].species for recs in recordings]
    if len(set(names)) != len(names):
        raise ValueError(f"recordings: a species appears twice in {names}")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = _resolve_device(settings.device)
    runs = [
        _prepare(recs, output_path / recs[0].species, settings, device, log) for recs in recordings
    ]
    groups: dict[tuple, list[int]] = {}
    for index, run in enumerate(runs):
        groups.setdefault(_stack_key(run), []).append(index)
    results: dict[int, TrainResult | CollapseError] = {}
    for members in groups.values():
        group = _Group([runs[i] for i in members], settings, device, log)
        digest = hashlib.sha256("\n".join(sorted(group.names)).encode()).hexdigest()[:12]
        checkpoint = output_path / "checkpoints" / f"stacked-{digest}"
        outcomes = group.train(checkpoint, resume, progress, on_epoch_end)
        results.update(zip(members, outcomes, strict=True))
    return [results[index] for index in range(len(runs))]


def _initial_model(run: _Species, seed: int, draw: int) -> SpeciesModel:
    """The ``draw``-th model train_species initialises after ``torch.manual_seed(seed)`` (draws
    after the first are its fresh restarts), without touching the global generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(draw + 1):
            model = run.fresh_model(torch.device("cpu"))
    return model


class _Group:
    """Species of one architecture, their weights and Adam moments stacked ``[species, ...]``."""

    def __init__(
        self,
        runs: list[_Species],
        settings: TrainSettings,
        device: torch.device,
        log: Callable[[str], None],
    ) -> None:
        self.runs, self.settings, self.device, self.log = runs, settings, device, log
        self.names = [run.species for run in runs]
        self.models = [_initial_model(run, settings.seed, 0).to(device) for run in runs]
        params, buffers = stack_module_state(self.models)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers
        self.exp_avg = {name: torch.zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in params.items()}
        self.adam_steps = [0] * len(runs)
        # The structure to call with stacked weights; its own tensors are never used.
        self.base = copy.deepcopy(self.models[0]).to("meta")
        self.generators = [torch.Generator(device=device).manual_seed(settings.seed) for _ in runs]
        self.progress = [_Progress(settings.learning_rate) for _ in runs]
        self.best_states: list[dict[str, Tensor] | None] = [None] * len(runs)
        self.fresh_draws = [0] * len(runs)
        self.failed: list[CollapseError | None] = [None] * len(runs)
        self.loss_fn = MultiScaleSpectralLoss(runs[0].config.sample_rate, f_min=runs[0].loss_f_min)

    # -- one step for every active species -------------------------------------------------

    def _forward(self, f0: Tensor, loud: Tensor, conf: Tensor, white: Tensor) -> Tensor:
        """SpeciesModel.forward with the stacked weights, for ``[species, batch, frames]``
        contours and ``white [species * batch, n]`` noise → ``[species * batch, n]``."""
        params = self.params
        decoder = {k.removeprefix("decoder."): v for k, v in params.items() if k != "reverb.ir"}
        norm = {k.removeprefix("decoder."): v for k, v in self.buffers.items()}
        controls = vmap(lambda p, b, *x: functional_call(self.base.decoder, (p, b), x))(
            decoder, norm, f0, loud, conf
        )
        harmonic, noise = self.base.render_parts(
            Controls(*(c.flatten(0, 1) for c in controls)), white
        )
        dry = (harmonic + noise).unflatten(0, f0.shape[:2])
        wet = vmap(lambda ir, x: functional_call(self.base.reverb, {"ir": ir}, (x,)))(
            params["reverb.ir"], dry
        )
        return wet.flatten(0, 1)

    def _step(self, active: list[int]) -> Tensor:
        """One training step: every species computes (so a species' arithmetic never depends
        on which others are still training), the ``active`` ones are updated. Losses
        ``[species]``."""
        settings, device = self.settings, self.device
        batches = [run.sampler.batch(settings.batch_size) for run in self.runs]
        stacked = lambda i: torch.as_tensor(np.stack([b[i] for b in batches]), device=device)  # noqa: E731
        f0, loud, conf, audio = (stacked(i) for i in range(4))
        white = torch.cat(
            [torch.randn(*audio.shape[1:], generator=g, device=device) for g in self.generators]
        )
        floors = [
            torch.as_tensor(np.concatenate([b[4][i] for b in batches]), device=device)
            for i in range(len(batches[0][4]))
        ]
        # Band edges stay on the host, where the loss reads them.
        edges = torch.as_tensor(np.concatenate([b[5] for b in batches]))
        output = self._forward(f0, loud, conf, white)
        losses = self.loss_fn(
            output,
            audio.flatten(0, 1),
            floors if settings.background_in_loss else None,
            groups=len(self.runs),
            band_edges=edges,
        )
        for p in self.params.values():
            p.grad = None
        losses.sum().backward()
        self._update(active)
        return losses.detach()

    @torch.no_grad()
    def _update(self, active: list[int]) -> None:
        """clip_grad_norm_ and an Adam step (torch's formulas) per species. All rows are computed
        (so a row's arithmetic never depends on the others); only the ``active`` species' rows
        take the new weights and moments."""
        beta1, beta2 = _BETAS
        for k in active:
            self.adam_steps[k] += 1
        rows = lambda values: torch.tensor(values, device=self.device)  # noqa: E731
        update = rows([k in active for k in range(len(self.runs))])
        steps = [max(1, s) for s in self.adam_steps]  # an idle row's result is thrown away
        step_size = rows(
            [-p.lr / (1 - beta1**s) for p, s in zip(self.progress, steps, strict=True)]
        )
        correction = rows([(1 - beta2**s) ** 0.5 for s in steps])
        # Layers frozen on a prior (``prior_freeze``) take no gradient: torch.optim skips them.
        trainable = {name: p for name, p in self.params.items() if p.requires_grad}
        grads = {name: p.grad for name, p in trainable.items()}
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads.values()])
        clip = (_MAX_GRAD_NORM / (torch.linalg.vector_norm(norms, dim=0) + 1e-6)).clamp(max=1.0)
        for name, param in trainable.items():
            shape = (-1,) + (1,) * (param.dim() - 1)
            grad = grads[name] * clip.view(shape)
            exp_avg = self.exp_avg[name].lerp(grad, 1 - beta1)
            exp_avg_sq = self.exp_avg_sq[name].mul(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / correction.view(shape)).add_(_EPS)
            keep = update.view(shape)
            param.copy_(torch.where(keep, param + step_size.view(shape) * exp_avg / denom, param))
            self.exp_avg[name] = torch.where(keep, exp_avg, self.exp_avg[name])
            self.exp_avg_sq[name] = torch.where(keep, exp_avg_sq, self.exp_avg_sq[name])

    # -- per-species bookkeeping -----------------------------------------------------------

    @torch.no_grad()
    def _to_model(self, k: int) -> SpeciesModel:
        """Species ``k``'s module, holding its row of the stacked weights."""
        for name, param in self.models[k].named_parameters():
            param.copy_(self.params[name][k])
        return self.models[k]

    @torch.no_grad()
    def _restart(self, k: int) -> None:
        """train_species' restart: the best state (or a fresh model), a fresh Adam."""
        best = self.best_states[k]
        if best is not None:
            self.models[k].load_state_dict(best)
        else:
            self.fresh_draws[k] += 1
            fresh = _initial_model(self.runs[k], self.settings.seed, self.fresh_draws[k])
            self.models[k].load_state_dict(fresh.state_dict())
        for name, param in self.models[k].named_parameters():
            self.params[name][k] = param
            self.exp_avg[name][k] = 0
            self.exp_avg_sq[name][k] = 0
        self.adam_steps[k] = 0

    def _active(self) -> list[int]:
        return [
            k
            for k, state in enumerate(self.progress)
            if self.failed[k] is None and state.running(self.settings)
        ]

    def _validate_species(self, k: int) -> tuple[dict[str, Any], float]:
        """Species ``k``'s validation metrics (train_species' ``_validate``) and seconds."""
        started = time.perf_counter()
        settings = self.settings
        model = self._to_model(k)
        metrics = _validate(model, self.runs[k].val_on, settings.seed, settings.background_in_loss)
        return metrics, time.perf_counter() - started

    def _end_epoch(self, k: int, loss: float, metrics: dict[str, Any], seconds: float) -> None:
        """Act on species ``k``'s epoch as train_species would."""
        run, settings, model = self.runs[k], self.settings, self.models[k]
        try:
            outcome = self.progress[k].end_epoch(run, settings, loss, metrics, seconds, self.log)
        except CollapseError as error:
            self.failed[k] = error
            return
        if outcome == "collapsed":
            self._restart(k)
        elif outcome == "improved":
            self.best_states[k] = {n: v.detach().clone() for n, v in model.state_dict().items()}
            run.save(model, self.progress[k].best, complete=False)
        _write_history(run.output_dir, self.progress[k].history)

    # -- checkpoint ------------------------------------------------------------------------

    def _save(self, directory: Path) -> None:
        cpu = lambda t: t.detach().cpu().contiguous()  # noqa: E731
        tensors = {}
        for kind, values in (("param", self.params), ("exp_avg", self.exp_avg)):
            tensors.update({f"{kind}.{n}": cpu(v) for n, v in values.items()})
        tensors.update({f"exp_avg_sq.{n}": cpu(v) for n, v in self.exp_avg_sq.items()})
        tensors.update({f"generator.{k}": g.get_state() for k, g in enumerate(self.generators)})
        state = {
            "species": self.names,
            "device": self.device.type,
            "adam_steps": self.adam_steps,
            "fresh_draws": self.fresh_draws,
            "failed": [None if e is None else str(e) for e in self.failed],
            "progress": [
                {**asdict(p), "numpy_rng": run.sampler.rng.bit_generator.state}
                for p, run in zip(self.progress, self.runs, strict=True)
            ],
        }
        write_checkpoint(directory, tensors, state)

    @torch.no_grad()
    def _load(self, directory: Path) -> None:
        # The directory is named by a hash of the group's species: it holds this group's state.
        tensors, state = read_checkpoint(directory)
        for kind, values in (
            ("param", self.params),
            ("exp_avg", self.exp_avg),
            ("exp_avg_sq", self.exp_avg_sq),
        ):
            for name, value in values.items():
                value.copy_(tensors[f"{kind}.{name}"])
        for k, generator in enumerate(self.generators):
            restore_generator(
                generator, tensors[f"generator.{k}"], state, directory / CHECKPOINT_FILE
            )
        self.adam_steps, self.fresh_draws = state["adam_steps"], state["fresh_draws"]
        self.failed = [None if e is None else CollapseError(e) for e in state["failed"]]
        for k, (run, meta) in enumerate(zip(self.runs, state["progress"], strict=True)):
            run.sampler.rng.bit_generator.state = meta["numpy_rng"]
            self.progress[k] = _Progress.from_checkpoint(meta)
            # The checkpoint follows each epoch's model saves, so a best it records is saved.
            if self.progress[k].best and self.failed[k] is None:
                self.best_states[k] = load_weights(run.output_dir, self.device)

    # -- the loop --------------------------------------------------------------------------

    def train(
        self,
        checkpoint: Path,
        resume: bool,
        progress: bool,
        on_epoch_end: Callable[[int], None] | None,
    ) -> list[TrainResult | CollapseError]:
        """Train until every species stopped; each one's result or failure, in order."""
        started = time.perf_counter()
        if resume and has_checkpoint(checkpoint):
            self._load(checkpoint)
        active = self._active()
        epoch = max(len(p.history) for p in self.progress)
        if epoch:
            self.log(f"[{', '.join(self.names)}] resuming at epoch {epoch + 1}")
        bar = tqdm(
            total=self.settings.epochs,
            initial=epoch,
            desc=f"{len(self.names)} species",
            disable=not progress,
        )
        while active:
            epoch_start = time.perf_counter()
            losses = [self._step(active) for _ in range(self.settings.steps_per_epoch)]
            mean_losses = np.mean(torch.stack(losses).cpu().numpy().astype(np.float64), axis=0)
            # Each species' epoch seconds: its share of the stacked steps, its own validation.
            share = (time.perf_counter() - epoch_start) / len(active)
            # Validation is mostly CPU work (F0 tracking, spectra; numba without the GIL) that
            # would leave a GPU waiting: species validate in parallel threads, each seeded alone.
            with ThreadPoolExecutor(min(len(active), os.cpu_count() or 1)) as pool:
                validated = list(pool.map(self._validate_species, active))
            for k, (metrics, seconds) in zip(active, validated, strict=True):
                self._end_epoch(k, float(mean_losses[k]), metrics, share + seconds)
            self._save(checkpoint)
            epoch += 1
            bar.update(1)
            if on_epoch_end is not None:
                on_epoch_end(epoch)
            active = self._active()
        bar.close()
        wall = time.perf_counter() - started
        results: list[TrainResult | CollapseError] = []
        for k, run in enumerate(self.runs):
            outcome = self.failed[k]
            if outcome is None:
                try:
                    model = self._to_model(k)
                    outcome = _finish(run, model, self.best_states[k], self.progress[k], wall)
                except CollapseError as error:
                    outcome = error
            results.append(outcome)
        return results
