import copy
import pickle
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import XC_GERMANY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ddsp_augment.augment.dataset import DEFAULT_SCENE, ClassCount, DDSPBalancedDataset
from ddsp_augment.augment.layout import ItemLayout
from ddsp_augment.io import load_audio

NO_MODEL = "Turdus_merula"  # a real species the small bank has no model of


class ClipDataset(Dataset):
    """torchaudio-style items ``(waveform [channels, time], sample_rate, label, name)``."""

    def __init__(self, items):
        self.items = items
        self.reads = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.reads += 1
        return self.items[index]


@pytest.fixture(scope="module")
def items(tonal_clips):
    """3 Parus major, 1 Fringilla coelebs, 2 Turdus merula real clips at their own rates."""
    chosen = [(p, "Parus_major") for p in tonal_clips["Parus_major"]]
    chosen += [(tonal_clips["Fringilla_coelebs"][0], "Fringilla_coelebs")]
    blackbirds = sorted((XC_GERMANY / NO_MODEL).glob("*.mp3"))[:2]
    chosen += [(p, NO_MODEL) for p in blackbirds]
    out = []
    for path, label in chosen:
        audio, rate = load_audio(path)
        audio = audio[: 3 * rate]
        out.append((torch.from_numpy(audio)[None, :], rate, label, path.stem))
    return out


def balanced(items, bank, **kwargs):
    kwargs.setdefault("progress", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DDSPBalancedDataset(ClipDataset(items), bank, **kwargs)


def all_items(dataset):
    return [dataset[i] for i in range(len(dataset))]


def assert_items_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        torch.testing.assert_close(x[0], y[0], rtol=0, atol=0)
        assert tuple(x[1:]) == tuple(y[1:])  # the DataLoader turns tuples into lists


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("max", {"Parus_major": (3, 0), "Fringilla_coelebs": (1, 2), NO_MODEL: (2, 0)}),
        ("mean", {"Parus_major": (3, 0), "Fringilla_coelebs": (1, 1), NO_MODEL: (2, 0)}),
        (5, {"Parus_major": (3, 2), "Fringilla_coelebs": (1, 4), NO_MODEL: (2, 0)}),
        (2.0, {"Parus_major": (3, 3), "Fringilla_coelebs": (1, 5), NO_MODEL: (2, 0)}),
        (
            {"Fringilla_coelebs": 4},
            {"Parus_major": (3, 0), "Fringilla_coelebs": (1, 3), NO_MODEL: (2, 0)},
        ),
    ],
)
def test_class_counts_per_target_strategy(items, small_bank, target, expected):
    dataset = balanced(items, small_bank, target=target)
    counts = dataset.class_counts()
    assert counts == {label: ClassCount(*pair) for label, pair in expected.items()}
    assert len(dataset) == len(items) + sum(s for _, s in expected.values())
    synthetic = [dataset.synthetic_origin(i) for i in range(len(items), len(dataset))]
    for label, (_, n) in expected.items():
        assert [k for c, k in synthetic if c == label] == list(range(n))


def test_synthetic_items_have_the_structure_of_real_items(items, small_bank_path):
    dataset = balanced(items, small_bank_path, target=3)
    real_by_label = {}
    for item in items:
        real_by_label.setdefault(item[2], []).append(item)
    assert len(dataset) == len(items) + 2  # Zonotrichia 1 -> 3; Parus has 3; Turdus has no model
    for index in range(len(items), len(dataset)):
        waveform, rate, label, name = dataset[index]
        reals = real_by_label[label]
        assert isinstance(waveform, torch.Tensor) and waveform.dtype == torch.float32
        assert waveform.ndim == 2 and waveform.shape[0] == 1
        assert rate == reals[0][1] and type(rate) is type(reals[0][1])
        assert waveform.shape[1] in {r[0].shape[1] for r in reals}
        assert name in {r[3] for r in reals}
        assert torch.isfinite(waveform).all() and waveform.abs().max() <= 1.0
        assert waveform.std() > 1e-4
        assert not any(torch.equal(waveform, r[0]) for r in reals)


def test_items_are_identical_with_0_and_2_workers_and_shuffling(items, small_bank_path):
    dataset = balanced(items, small_bank_path, target=4, seed=3)
    reference = all_items(dataset)

    def loaded(num_workers):
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(0))
        loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers)
        order = list(RandomSampler(dataset, generator=torch.Generator().manual_seed(0)))
        return order, list(loader)

    order, serial = loaded(0)
    _, parallel = loaded(2)
    assert_items_equal(serial, parallel)
    assert_items_equal(serial, [reference[i] for i in order])


def test_set_epoch_draws_new_synthetic_items_and_persistent_workers_follow(items, small_bank_path):
    dataset = balanced(items, small_bank_path, target="max")
    first = len(items)
    epoch0 = all_items(dataset)
    dataset.set_epoch(1)
    epoch1 = all_items(dataset)
    assert_items_equal(epoch0[:first], epoch1[:first])
    for a, b in zip(epoch0[first:], epoch1[first:], strict=True):
        assert a[2] == b[2]
        assert not torch.equal(a[0], b[0])

    dataset.set_epoch(0)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    assert_items_equal(list(loader), epoch0)
    dataset.set_epoch(1)
    assert_items_equal(list(loader), epoch1)


def test_pickles_small_and_reloads_the_bank_lazily(items, small_bank, small_bank_path):
    dataset = balanced(items, small_bank_path, target="max")
    dataset.set_epoch(2)
    expected = all_items(dataset)
    payload = pickle.dumps(dataset)
    # The dataset, its measured noise floors and a few KB of bookkeeping: no bank.
    assert dataset._backgrounds.shape == (len(items), 1025)
    overhead = len(payload) - len(pickle.dumps(dataset.dataset)) - dataset._backgrounds.nbytes
    assert 0 < overhead < 4000
    clone = pickle.loads(payload)
    assert clone._bank is None and clone.epoch == 2
    assert_items_equal(all_items(clone), expected)

    in_memory = copy.copy(small_bank)
    in_memory.path = None
    with pytest.raises(TypeError, match="bank_path"):
        pickle.dumps(balanced(items, in_memory, target="max"))
    by_object = balanced(items, in_memory, target="max", bank_path=small_bank_path)
    by_object.set_epoch(2)
    assert_items_equal(all_items(pickle.loads(pickle.dumps(by_object))), expected)


def test_distributed_sampler_partitions_every_index_once(items, small_bank_path):
    dataset = balanced(items, small_bank_path, target="max")
    assert len(dataset) % 2 == 0
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(3)
        seen += list(sampler)
    assert sorted(seen) == list(range(len(dataset)))


def test_unknown_labels_warn_once_or_raise_when_strict(items, small_bank):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = DDSPBalancedDataset(ClipDataset(items), small_bank, target=4, progress=False)
    messages = [str(w.message) for w in caught if NO_MODEL in str(w.message)]
    assert len(messages) == 1 and "no model" in messages[0]
    assert dataset.class_counts()[NO_MODEL] == ClassCount(2, 0)
    with pytest.raises(ValueError, match=NO_MODEL):
        DDSPBalancedDataset(ClipDataset(items), small_bank, target=4, strict=True, progress=False)
    # Classes that need no synthetic items do not need a model.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DDSPBalancedDataset(ClipDataset(items), small_bank, target=2, strict=True, progress=False)


def test_integer_labels_with_mapping_dict_items_and_flag(items, small_bank_path):
    names = ["Parus_major", "Fringilla_coelebs", NO_MODEL]
    dict_items = [
        {"audio": waveform[0].numpy(), "rate": rate, "class_id": names.index(label)}
        for waveform, rate, label, _ in items
    ]
    dataset = balanced(
        dict_items,
        small_bank_path,
        target="max",
        label_to_species=dict(enumerate(names[:2])),
        layout=ItemLayout(waveform="audio", sample_rate="rate", label_fn=lambda i: i["class_id"]),
        return_synthetic_flag=True,
    )
    assert dataset.class_counts() == {0: (3, 0), 1: (1, 2), 2: (2, 0)}
    real, synthetic = dataset[0], dataset[len(items)]
    assert real["is_synthetic"] is False and synthetic["is_synthetic"] is True
    assert set(real) == set(synthetic)
    assert synthetic["class_id"] == 1 and synthetic["rate"] == items[3][1]
    assert isinstance(synthetic["audio"], np.ndarray) and synthetic["audio"].dtype == np.float32
    assert synthetic["audio"].shape == (items[3][0].shape[1],)
    callable_map = balanced(
        dict_items,
        small_bank_path,
        label_to_species=names.__getitem__,
        layout={"waveform": "audio", "sample_rate": "rate", "label": "class_id"},
    )
    assert callable_map.class_counts()[1] == (1, 2)


def test_labels_argument_and_targets_attribute_avoid_reading_items(items, small_bank_path):
    labels = [item[2] for item in items]
    source = ClipDataset(items)
    options = {"backgrounds": "species", "progress": False}  # "dataset" reads items to measure
    DDSPBalancedDataset(source, small_bank_path, "mean", labels=labels, **options)
    source.targets = labels
    DDSPBalancedDataset(source, small_bank_path, "mean", **options)
    assert source.reads == 0
    del source.targets
    DDSPBalancedDataset(source, small_bank_path, "mean", **options)
    assert source.reads == len(items)
    # The default measures the backgrounds of every item of this small dataset, once.
    DDSPBalancedDataset(source, small_bank_path, "mean", labels=labels, progress=False)
    assert source.reads == 2 * len(items)
    with pytest.raises(ValueError, match="labels"):
        DDSPBalancedDataset(source, small_bank_path, labels=labels[:-1], progress=False)


def test_multichannel_items_and_fixed_seconds(items, small_bank_path):
    stereo = [(torch.cat([w, 0.5 * w]), rate, label, name) for w, rate, label, name in items]
    dataset = balanced(stereo, small_bank_path, target="max", seconds=1.5)
    waveform, rate, label, _ = dataset[len(items)]
    assert label == "Fringilla_coelebs"
    assert waveform.shape == (2, int(round(1.5 * rate)))
    torch.testing.assert_close(waveform[0], waveform[1], rtol=0, atol=0)


def test_cache_dir_reuses_songs(items, small_bank_path, tmp_path):
    plain = all_items(balanced(items, small_bank_path, target="max"))
    cached = balanced(items, small_bank_path, target="max", cache_dir=tmp_path)
    assert_items_equal(all_items(cached), plain)
    files = sorted(tmp_path.glob("*.wav"))
    assert len(files) == 2 and files[0].name.startswith("0-0-")
    for path in files:  # overwrite with silence: reads must now come from the cache
        sf.write(
            str(path), np.zeros(items[3][0].shape[1], np.float32), items[3][1], subtype="FLOAT"
        )
    assert all(cached[i][0].abs().max() == 0 for i in range(len(items), len(cached)))


def test_songs_cached_by_another_release_or_other_jitter_defaults_are_not_read(
    items, small_bank_path, tmp_path, monkeypatch
):
    from ddsp_augment.augment import dataset as dataset_module
    from ddsp_augment.sampling.jitter import JitterConfig

    def digest() -> str:
        return balanced(items, small_bank_path, target="max", cache_dir=tmp_path)._cache._digest

    first = digest()
    assert digest() == first
    monkeypatch.setattr(dataset_module, "__version__", "99.0")
    assert digest() != first
    monkeypatch.undo()
    # New class defaults (what jitter=None builds each species' ranges on).
    narrower = lambda: JitterConfig(pitch_cents=10.0)  # noqa: E731
    monkeypatch.setattr(dataset_module, "JitterConfig", narrower)
    assert digest() != first


def _band_power(waveform: torch.Tensor, rate: int, lo_hz: float, hi_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(waveform.double().numpy().mean(0))) ** 2
    freqs = np.fft.rfftfreq(waveform.shape[-1], 1 / rate)
    band = (freqs >= lo_hz) & (freqs < hi_hz)
    # Parseval: the band's share of the mean power.
    return float(2 * spectrum[band].sum() / waveform.shape[-1] ** 2)


def test_dataset_backgrounds_put_songs_over_the_whole_datasets_recordings(items, small_bank):
    """Above every bird here (13-15 kHz) a synthetic song carries only its background: with
    backgrounds="dataset" that is the loud white noise of the other class's recordings."""
    rate = 32000
    rng = np.random.default_rng(0)
    sigma = 0.1  # white noise: power sigma² spread evenly over 0..16 kHz
    quiet = [(w, r, label, n) for w, r, label, n in items if label == "Fringilla_coelebs"]
    noisy = [
        (torch.from_numpy(rng.normal(0, sigma, 3 * rate).astype(np.float32))[None], rate, "X", "x")
        for _ in range(3)
    ]
    own = balanced(
        quiet + noisy, small_bank, target={"Fringilla_coelebs": 4}, backgrounds="species"
    )
    pooled = balanced(quiet + noisy, small_bank, target={"Fringilla_coelebs": 4})
    assert pooled._backgrounds.shape == (4, 1025)  # every real item measured
    expected = sigma**2 * 2 / 16
    for index in range(4, 7):
        waveform, item_rate, label, _ = pooled[index]
        assert label == "Fringilla_coelebs"
        power = _band_power(waveform, item_rate, 13000, 15000)
        own_power = _band_power(own[index][0], item_rate, 13000, 15000)
        # A song over the quiet Fringilla floor is far below the noise; one over a noisy item's
        # floor within 2 dB of it. Draws pick either, so at least one should be noisy.
        assert own_power < expected / 30
        assert power < expected / 30 or abs(10 * np.log10(power / expected)) < 2.0
    powers = [_band_power(pooled[i][0], pooled[i][1], 13000, 15000) for i in range(4, 7)]
    assert max(powers) > expected / 2


def test_background_array_is_validated_and_used(items, small_bank):
    with pytest.raises(ValueError, match="1025"):
        balanced(items, small_bank, target="max", backgrounds=np.ones((2, 513), np.float32))
    with pytest.raises(ValueError, match="'dataset', 'species'"):
        balanced(items, small_bank, target="max", backgrounds="others")
    floors = np.full((1, 1025), 0.5, np.float32)
    a = balanced(items, small_bank, target="max", backgrounds=floors)
    b = balanced(items, small_bank, target="max")
    assert not torch.equal(a[len(items)][0], b[len(items)][0])
    assert torch.equal(
        a[len(items)][0],
        balanced(items, small_bank, target="max", backgrounds=floors)[len(items)][0],
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "median"}, "target"),
        ({"target": -1}, ">= 0"),
        ({"target": True}, "bool"),
        ({"target": 0.0}, "ratio"),
        ({"target": {"Corvus_corax": 3}}, "not in the dataset"),
        ({"seconds": 0}, "seconds"),
        ({"backend": "cuda"}, "backend"),
        ({"seed": -1}, "seed"),
        ({"jitter": {"pitch_cents": -5}}, "pitch_cents"),
    ],
)
def test_invalid_arguments_raise_value_error(items, small_bank, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DDSPBalancedDataset(ClipDataset(items), small_bank, progress=False, **kwargs)


def test_cache_rerenders_truncated_and_stereo_files(items, small_bank_path, tmp_path):
    plain = all_items(balanced(items, small_bank_path, target="max"))
    cached = balanced(items, small_bank_path, target="max", cache_dir=tmp_path)
    all_items(cached)
    truncated, stereo = sorted(tmp_path.glob("*.wav"))
    song, rate = sf.read(str(truncated), dtype="float32")
    sf.write(str(truncated), song[:3990], rate, subtype="FLOAT")  # a copy cut short
    sf.write(str(stereo), np.stack([song, song], axis=1), rate, subtype="FLOAT")
    assert_items_equal(all_items(cached), plain)  # rendered again, not read as they are
    for path in (truncated, stereo):
        info = sf.info(str(path))
        assert (info.channels, info.frames) == (1, items[3][0].shape[1])  # and rewritten


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"seconds": 1e-5}, ValueError, r"too short to hold one frame .*\(2.0 ms\)"),
        ({"seconds": float("inf")}, ValueError, "seconds must be finite"),
        ({"seconds": float("nan")}, ValueError, "seconds must be > 0, got nan"),
        ({"seconds": "1"}, TypeError, "seconds must be a number"),
        ({"target": float("inf")}, ValueError, "finite float > 0, got inf"),
        ({"target": float("nan")}, ValueError, "finite float > 0, got nan"),
        ({"sample_rate": 44100.5}, ValueError, "sample_rate must be a positive whole number"),
        ({"sample_rate": True}, ValueError, "sample_rate must be a sample rate in Hz"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"jitter": "wide"}, TypeError, "jitter must be"),
        ({"layout": {"waveform": 0.5}}, TypeError, "ItemLayout.waveform"),
    ],
)
def test_bad_arguments_are_refused_at_construction(items, small_bank, kwargs, error, message):
    with pytest.raises(error, match=message):
        balanced(items, small_bank, **kwargs)


def test_items_without_a_sample_rate_need_sample_rate_argument(items, small_bank):
    # (waveform, label, name): field 1, where a torchaudio item has its rate, is the label.
    no_rate = [(w, label, name) for w, _, label, name in items]
    layout = ItemLayout(label=1)
    hint = "sample_rate=<Hz>"
    with pytest.raises(ValueError, match=f"'Parus_major'.*{hint}"):  # measuring backgrounds
        balanced(no_rate, small_bank, layout=layout)
    lazy = balanced(no_rate, small_bank, layout=layout, backgrounds="species")
    with pytest.raises(ValueError, match=hint):  # the first synthetic item
        lazy[len(items)]
    dict_items = [{"waveform": w, "label": label} for w, _, label, _ in items]
    with pytest.raises(ValueError, match=f"no sample rate at 'sample_rate'.*{hint}"):
        balanced(dict_items, small_bank)
    given = balanced(no_rate, small_bank, layout=layout, sample_rate=22050, seconds=0.002)
    waveform, label, _ = given[len(items)]
    assert label == "Fringilla_coelebs" and waveform.shape == (1, 44)  # the shortest allowed


def test_set_epoch_and_indexing_refuse_what_they_cannot_represent(items, small_bank):
    dataset = balanced(items, small_bank, target="max", scene=None)
    dataset.set_epoch(np.int64(3))
    assert dataset.epoch == 3
    for epoch, error in [(2**64, ValueError), (2**63, ValueError), (-1, ValueError)]:
        with pytest.raises(error, match=r"epoch must be in \[0, 9223372036854775807\]"):
            dataset.set_epoch(epoch)
    for epoch in (1.7, 1.0, True, "2"):
        with pytest.raises(TypeError, match="epoch must be an integer"):
            dataset.set_epoch(epoch)
    assert dataset.epoch == 3  # unchanged by the refused calls
    dataset.set_epoch(2**63 - 1)
    assert dataset.epoch == 2**63 - 1 and dataset[len(items)][0].shape == items[3][0].shape
    n = len(dataset)
    torch.testing.assert_close(dataset[-1][0], dataset[n - 1][0], rtol=0, atol=0)
    for index in (n, -n - 1):
        with pytest.raises(IndexError, match=f"index {index} out of range for {n} items"):
            dataset[index]
    with pytest.raises(TypeError, match="index must be an integer"):
        dataset[1.0]


def test_repr_and_defaults(items, small_bank_path):
    dataset = balanced(items, small_bank_path, target="max")
    text = repr(dataset)
    assert text == (
        f"DDSPBalancedDataset(ClipDataset: 6 real + 2 synthetic items in 3 classes, "
        f"bank='{small_bank_path}', target='max', seed=0, epoch=0, "
        "scene=SceneConfig(distance_m=(1.0, 3.0), rt60_s=(0.2, 1.0)), "
        "backgrounds='dataset' (6 floors), backend='numba')"
    )
    # The defaults are the scene the classifier benchmark validated, over the dataset's own
    # noise floors (the benchmark measures them the same way: scene_backgrounds).
    from classifier_gain.conditions import scene_config

    assert dataset.backgrounds == "dataset"
    assert dataset.scene == DEFAULT_SCENE == scene_config({})


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**64),
    epoch=st.integers(0, 2**63 - 1),
    target=st.integers(0, 5),
    seconds=st.none() | st.floats(0.002, 0.5),
    position=st.floats(0, 1, exclude_max=True),
    flag=st.booleans(),
)
def test_any_valid_item_is_finite_with_the_promised_shape(
    items, small_bank_path, seed, epoch, target, seconds, position, flag
):
    # Real items cut to 0.5 s keep each example fast.
    short = [(w[:, : r // 2], r, label, name) for w, r, label, name in items]
    dataset = balanced(
        short,
        small_bank_path,
        target=target,
        seed=seed,
        seconds=seconds,
        return_synthetic_flag=flag,
    )
    dataset.set_epoch(epoch)
    index = int(position * len(dataset)) - len(dataset) * (seed % 2)  # negative half the time
    item = dataset[index]
    origin = dataset.synthetic_origin(index)
    waveform, rate, label = item[:3]
    assert waveform.dtype == torch.float32 and torch.isfinite(waveform).all()
    assert waveform.abs().max() <= 1.0
    if origin is None:
        real = short[index % len(dataset)]
        assert waveform is real[0] and tuple(item[1:4]) == real[1:]
    else:
        assert label == origin[0] and waveform.shape[0] == 1
        lengths = {w.shape[1] for w, r, c, _ in short if c == label}
        expected = {round(seconds * rate)} if seconds is not None else lengths
        assert waveform.shape[1] in expected
    assert len(item) == 5 if flag else len(item) == 4
    if flag:
        assert item[4] is (origin is not None)


class _ConstantJudge:
    """Gives every clip the same confidence and records which species it was asked about."""

    def __init__(self, confidence):
        self.confidence = confidence
        self.asked = []

    def __call__(self, audio, sample_rate, species):
        self.asked.append((species, audio.shape, sample_rate))
        return self.confidence


def test_quality_gate_redraws_rejected_songs(items, small_bank_path):
    plain = balanced(items, small_bank_path, target="max")
    accept = _ConstantJudge(1.0)
    accepting = balanced(items, small_bank_path, target="max", quality_gate=(accept, 0.5))
    synthetic = [i for i in range(len(plain)) if i >= len(items)]
    assert len(synthetic) == 2
    # A song the judge accepts at once is the ungated song, bit for bit.
    for i in synthetic:
        assert torch.equal(accepting[i][0], plain[i][0])
    assert {species for species, _, _ in accept.asked} <= {"Parus_major", "Fringilla_coelebs"}
    # A judge that accepts nothing costs max_draws (8) draws per item; the item keeps its shape.
    reject = _ConstantJudge(0.0)
    rejecting = balanced(items, small_bank_path, target="max", quality_gate=(reject, 0.5))
    waveform = rejecting[synthetic[0]][0]
    assert waveform.shape == plain[synthetic[0]][0].shape and torch.isfinite(waveform).all()
    assert len(reject.asked) == 8 and rejecting.bank.gate_stats.accepted == 0


@pytest.mark.parametrize(
    ("gate", "error", "message"),
    [
        ((_ConstantJudge(1.0),), TypeError, "pair"),
        (("not callable", 0.5), TypeError, "judge must be callable"),
        ((_ConstantJudge(1.0), 1.5), ValueError, "min_confidence"),
    ],
)
def test_quality_gate_is_checked(items, small_bank_path, gate, error, message):
    with pytest.raises(error, match=message):
        balanced(items, small_bank_path, quality_gate=gate)


def test_noise_source_is_a_setting_of_the_synthetic_items(items, small_bank_path):
    # The decoder's noise by default; "recorded" gives other songs for the same seed.
    model = balanced(items, small_bank_path, target="max")
    recorded = balanced(items, small_bank_path, target="max", noise="recorded")
    last = len(model) - 1
    assert model.noise == "model"
    assert not torch.equal(model[last][0], recorded[last][0])
    assert model._cache_settings() != recorded._cache_settings()  # cached songs kept apart
    with pytest.raises(ValueError, match="noise"):
        balanced(items, small_bank_path, noise="none")
