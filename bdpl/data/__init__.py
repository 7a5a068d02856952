"""Labelled examples: user files, k-shot sampling, and the preset tasks' benchmark data.

- :func:`read_examples` / :func:`read_dataset`: TSV, CSV, JSONL or JSON files with a column
  mapping (``bdpl.data.files``).
- :func:`sample_k_shot`: ``k`` examples per class, seeded (``bdpl.data.sampling``).
- :func:`load_split`: a preset task's train, dev or test split from the benchmark data
  directory (``bdpl.data.benchmarks``).
"""

from bdpl.data.benchmarks import PRESET_DATA, SPLITS, FileSpec, TaskData, find_data_dir, load_split
from bdpl.data.files import Column, Format, make_dataset, read_dataset, read_examples
from bdpl.data.sampling import sample_k_shot

__all__ = [
    "PRESET_DATA",
    "SPLITS",
    "Column",
    "FileSpec",
    "Format",
    "TaskData",
    "find_data_dir",
    "load_split",
    "make_dataset",
    "read_dataset",
    "read_examples",
    "sample_k_shot",
]
