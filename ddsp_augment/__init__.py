"""ddsp-augment: balance bird-sound datasets with per-species DDSP song synthesis."""

__version__ = "0.1.0"
