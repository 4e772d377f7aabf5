import numpy as np
import pytest
import torch

from ddsp_augment.augment.backgrounds import check_noise_floors, measure_dataset_backgrounds
from ddsp_augment.augment.layout import ItemLayout

SIGMA = 0.1
# White noise of std sigma under a 2048-point Hann window: RMS |X| = sigma * sqrt(sum w²).
WHITE_FLOOR = SIGMA * np.sqrt(np.sum(np.hanning(2049)[:-1] ** 2))


class Items:
    def __init__(self, items):
        self.items, self.read = items, []

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.read.append(index)
        return self.items[index]


def noise(n, rate, channels=1, seed=0):
    audio = np.random.default_rng(seed).normal(0, SIGMA, (channels, n)).astype(np.float32)
    return (torch.from_numpy(audio), rate, "x")


def test_white_noise_floor_level_resampling_and_even_picks():
    items = [noise(8000, 32000, seed=i) for i in range(9)] + [noise(8000, 16000, seed=9)]
    dataset = Items(items)
    floors = measure_dataset_backgrounds(dataset, ItemLayout(), 32000, max_items=4, progress=False)
    assert dataset.read == [0, 3, 6, 9]  # evenly spaced over the dataset
    assert floors.shape == (4, 1025) and floors.dtype == np.float32
    for floor in floors[:3]:
        assert np.median(floor[10:1000]) == pytest.approx(WHITE_FLOOR, rel=0.1)
    # The 16 kHz item, resampled to 32 kHz, has nothing above 8 kHz (bin 512).
    assert np.median(floors[3][10:480]) == pytest.approx(WHITE_FLOOR * np.sqrt(2), rel=0.1)
    assert floors[3][560:].max() < WHITE_FLOOR / 100


def test_stereo_is_mixed_short_items_skipped_and_none_left_refused():
    stereo = noise(8000, 32000, channels=2)
    short = noise(1000, 32000)
    floors = measure_dataset_backgrounds(
        Items([short, stereo]), ItemLayout(), 32000, None, 8, False
    )
    assert floors.shape == (1, 1025)
    # Two independent channels averaged: half the power.
    assert np.median(floors[0][10:1000]) == pytest.approx(WHITE_FLOOR / np.sqrt(2), rel=0.1)
    with pytest.raises(ValueError, match="no item of at least 2048 .* backgrounds='species'"):
        measure_dataset_backgrounds(Items([short]), ItemLayout(), 32000, progress=False)


def test_given_floors_are_checked():
    assert check_noise_floors(np.ones((2, 1025))).dtype == np.float32
    with pytest.raises(ValueError, match=r"floors must be \[n, 1025\] noise floors, got shape"):
        check_noise_floors(np.ones(1025), "floors")
    with pytest.raises(ValueError, match="finite magnitudes >= 0"):
        check_noise_floors(np.full((1, 1025), -1.0))
