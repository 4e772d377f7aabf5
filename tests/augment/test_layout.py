from collections import namedtuple

import numpy as np
import pytest
import torch

from ddsp_augment.augment.layout import ItemLayout, append_flag, check_sample_rate, plain_label

Item = namedtuple("Item", "audio rate label")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(16000, 16000), (np.int64(22050), 22050), (torch.tensor(8000), 8000), (44100.0, 44100)],
)
def test_sample_rates_accepted(value, expected):
    rate = check_sample_rate(value, "sample_rate")
    assert rate == expected and type(rate) is int


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (44100.5, "a positive whole number of Hz"),
        (0, "a positive whole number of Hz"),
        (-8000, "a positive whole number of Hz"),
        (float("inf"), "a positive whole number of Hz"),
        (float("nan"), "a positive whole number of Hz"),
        (True, "a sample rate in Hz"),
        ("Parus_major", "a sample rate in Hz.*'Parus_major'"),
        (torch.ones(2), "a sample rate in Hz"),
    ],
)
def test_sample_rates_refused_name_the_argument(value, message):
    with pytest.raises(ValueError, match=f"^rate_arg must be {message}"):
        check_sample_rate(value, "rate_arg")


def test_default_layout_reads_and_replaces_every_container():
    layout = ItemLayout()
    wave = torch.zeros(1, 4)
    for item in [(wave, 8000, "a", "id"), [wave, 8000, "a", "id"]]:
        assert layout.get(item, "waveform") is wave and layout.label_of(item) == "a"
        replaced = layout.replace(item, "waveform", None)
        assert type(replaced) is type(item) and list(replaced) == [None, 8000, "a", "id"]
    item = {"waveform": wave, "sample_rate": 8000, "label": np.int64(3)}
    assert layout.label_of(item) == 3 and type(layout.label_of(item)) is int
    assert layout.replace(item, "waveform", 1) == {"waveform": 1, "sample_rate": 8000, "label": 3}
    assert item["waveform"] is wave  # the original is left alone
    assert append_flag(item, True)["is_synthetic"] is True
    assert append_flag((wave,), False) == (wave, False) and append_flag([1], True) == [1, True]


def test_custom_layout_keys_and_label_fn():
    layout = ItemLayout(waveform=0, sample_rate=1, label_fn=lambda item: item.label.upper())
    item = Item(torch.zeros(3), 16000, "b")
    assert layout.label_of(item) == "B" and layout.sample_rate_of(item, None) == 16000
    assert layout.sample_rate_of(item, 8000) == 8000  # sample_rate= wins over the field
    assert layout.replace(item, "waveform", "x") == Item("x", 16000, "b")
    assert plain_label(torch.tensor(7)) == 7 and plain_label("c") == "c"


def test_missing_fields_say_where_to_look():
    with pytest.raises(ValueError, match=r"no waveform at 'waveform'.*ItemLayout\(waveform=...\)"):
        ItemLayout().get({"audio": 1}, "waveform")
    with pytest.raises(ValueError, match="no sample rate at 2: items without .*sample_rate=<Hz>"):
        ItemLayout(sample_rate=2).sample_rate_of((torch.zeros(3), "a"), None)
    with pytest.raises(TypeError, match="ItemLayout.label must be an int, a str or None"):
        ItemLayout(label=True)
    with pytest.raises(TypeError, match="label_fn must be callable"):
        ItemLayout(label_fn="label")
