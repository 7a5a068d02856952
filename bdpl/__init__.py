"""bdpl: Black-box Discrete Prompt Learning (Diao et al., TMLR 2023) for models you can only query."""

from bdpl.backends.base import Backend
from bdpl.errors import *  # noqa: F403
from bdpl.metering import Meter
from bdpl.tasks import PRESETS, Dataset, Example, Task, get_task
from bdpl.types import LabelScores, Query, Usage

__version__ = "0.1.0"
