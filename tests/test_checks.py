"""Shared argument checks: one wording for every backend and range error."""

from __future__ import annotations

import pytest

from ddsp_augment.checks import BACKENDS, DRAWS, check_backend, check_draws, check_range
from ddsp_augment.sampling.jitter import JitterConfig
from ddsp_augment.sampling.scene import SceneConfig


def test_backend_check():
    assert BACKENDS == ("numba", "torch")
    assert check_backend("torch") == "torch"
    with pytest.raises(
        ValueError, match=r"backend must be one of \('numba', 'torch'\), got 'cuda'"
    ):
        check_backend("cuda")


def test_draws_check():
    assert DRAWS == ("host", "device")
    assert check_draws("device") == "device"
    with pytest.raises(ValueError, match=r"draws must be one of \('host', 'device'\), got 'gpu'"):
        check_draws("gpu")


@pytest.mark.parametrize("value", [(2.0, 1.0), (0.5, 11.0), (1.0,), None, 3.0, ("a", "b")])
def test_bad_ranges_name_the_argument(value):
    with pytest.raises(ValueError, match=r"tempo must be \(min, max\) with 0.25 <= min <= max"):
        check_range("tempo", value, 0.25, 10.0)


def test_good_and_optional_ranges_pass():
    check_range("tempo", (0.5, 0.5), 0.25, 10.0)
    check_range("rt60_s", None, 0.0, 20.0, optional=True)


def test_configs_use_the_shared_check():
    with pytest.raises(ValueError, match="tempo must be"):
        JitterConfig(tempo=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wet must be"):
        SceneConfig(wet=(0.5, 0.2))
    assert SceneConfig(rt60_s=None, distance_m=None, snr_db=None).rt60_s is None
