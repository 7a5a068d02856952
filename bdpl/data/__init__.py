"""Labelled examples: user files, k-shot sampling, and the preset tasks' benchmark data.

- :func:`read_examples` / :func:`read_dataset`: TSV, CSV, JSONL or JSON files with a column
  mapping (``bdpl.data.files``).
- :func:`sample_k_shot`: ``k`` examples per class, seeded (``bdpl.data.sampling``).
- :func:`load_split`: a preset task's train, dev, test or pool split: shipped, from the
  benchmark data directory (``bdpl.data.benchmarks``), or from the Hugging Face Hub
  (``bdpl.data.hub``); :func:`split_source` says which.
"""

from bdpl.data.benchmarks import (
    PRESET_DATA,
    SPLITS,
    FileSpec,
    TaskData,
    find_data_dir,
    load_split,
    split_source,
)
from bdpl.data.files import Column, Format, make_dataset, read_dataset, read_examples
from bdpl.data.hub import HF_MIRROR_ENV, PRESET_HUB, HubData
from bdpl.data.sampling import sample_k_shot

__all__ = [
    "HF_MIRROR_ENV",
    "PRESET_DATA",
    "PRESET_HUB",
    "SPLITS",
    "Column",
    "FileSpec",
    "Format",
    "HubData",
    "TaskData",
    "find_data_dir",
    "load_split",
    "make_dataset",
    "read_dataset",
    "read_examples",
    "sample_k_shot",
    "split_source",
]
