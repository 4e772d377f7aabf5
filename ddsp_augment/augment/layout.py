"""`ItemLayout`: where a dataset item keeps its waveform, sample rate and label.

`DDSPBalancedDataset` reads real items and writes synthetic ones of the same structure; this
module is the only place that knows how an item is laid out (a torchaudio-style tuple, a
namedtuple, a list or a dict).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["ItemLayout", "append_flag", "check_sample_rate", "plain_label"]

Field = Literal["waveform", "sample_rate", "label"]
_FIELDS: tuple[Field, ...] = ("waveform", "sample_rate", "label")
FLAG_KEY = "is_synthetic"


def check_sample_rate(value: Any, name: str) -> int:
    """``value`` as a sample rate in Hz (a positive whole number) or a ValueError naming ``name``.

    Accepts ints, numpy integers, 0-d integer tensors and whole floats (``16000.0``); a fractional
    rate (``44100.5``) would silently change the duration of every synthetic item.
    """
    if isinstance(value, torch.Tensor | np.ndarray | np.generic) and np.ndim(value) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a sample rate in Hz (a positive integer), got {value!r}")
    if not (math.isfinite(value) and value == int(value) and value > 0):
        raise ValueError(f"{name} must be a positive whole number of Hz, got {value!r}")
    return int(value)


def plain_label(label: Any) -> Hashable:
    """0-d tensors and numpy scalars → Python scalars, so labels hash and compare by value."""
    if isinstance(label, torch.Tensor | np.ndarray | np.generic) and np.ndim(label) == 0:
        return label.item()
    return label


@dataclass(frozen=True)
class ItemLayout:
    """Position (tuples, lists) or key (dicts) of an item's fields.

    None means the torchaudio convention: ``(waveform, sample_rate, label, ...)`` for sequences,
    keys ``"waveform"``, ``"sample_rate"``, ``"label"`` for dicts.

    Attributes:
        waveform: Where the waveform is (``[channels, time]`` or ``[time]``, tensor or array).
        sample_rate: Where the sample rate is; ignored when the dataset is given ``sample_rate=``.
        label: Where the label is.
        label_fn: ``item -> label`` for layouts one position cannot express (replaces ``label``).
    """

    waveform: int | str | None = None
    sample_rate: int | str | None = None
    label: int | str | None = None
    label_fn: Callable[[Any], Hashable] | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            key = getattr(self, name)
            if key is not None and (isinstance(key, bool) or not isinstance(key, int | str)):
                raise TypeError(f"ItemLayout.{name} must be an int, a str or None, got {key!r}")
        if self.label_fn is not None and not callable(self.label_fn):
            raise TypeError(f"ItemLayout.label_fn must be callable, got {self.label_fn!r}")

    def key(self, item: Any, field: Field) -> int | str:
        """Where ``field`` sits in ``item``."""
        key = getattr(self, field)
        if key is not None:
            return key
        return field if isinstance(item, Mapping) else _FIELDS.index(field)

    def get(self, item: Any, field: Field) -> Any:
        key = self.key(item, field)
        try:
            return item[key]
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"dataset item {type(item).__name__} has no {field} at {key!r}; say where it is "
                f"with layout=ItemLayout({field}=...)"
            ) from None

    def label_of(self, item: Any) -> Hashable:
        return plain_label(self.label_fn(item) if self.label_fn else self.get(item, "label"))

    def sample_rate_of(self, item: Any, fixed: int | None) -> int:
        """The item's sample rate: ``fixed`` when given, else the item's own field."""
        if fixed is not None:
            return fixed
        key = self.key(item, "sample_rate")
        hint = (
            "items without a sample-rate field need the dataset's rate as sample_rate=<Hz> "
            "(or layout=ItemLayout(sample_rate=<key>) where it is elsewhere)"
        )
        try:
            value = item[key]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"dataset item has no sample rate at {key!r}: {hint}") from None
        try:
            return check_sample_rate(value, f"the item's field {key!r}")
        except ValueError as error:
            raise ValueError(f"{error}: {hint}") from None

    def replace(self, item: Any, field: Field, value: Any) -> Any:
        """``item`` with ``field`` set to ``value``, same container type (tuple, namedtuple,
        list, dict)."""
        key = self.key(item, field)
        if isinstance(item, Mapping):
            return {**item, key: value}
        if isinstance(item, tuple) and hasattr(item, "_fields"):
            return item._replace(**{item._fields[key]: value})
        fields = list(item)
        fields[key] = value
        return type(item)(fields)


def append_flag(item: Any, flag: bool) -> Any:
    """``item`` with an ``is_synthetic`` flag: a last element, or a key of a dict."""
    if isinstance(item, Mapping):
        return {**item, FLAG_KEY: flag}
    if isinstance(item, list):
        return [*item, flag]
    return (*item, flag)
