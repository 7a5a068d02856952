"""bdpl: Black-box Discrete Prompt Learning (Diao et al., TMLR 2023) for models you can only query.

Learn a short discrete prompt for a classification task from a model's outputs alone::

    import bdpl
    train, dev = bdpl.load_split("sst2", "train"), bdpl.load_split("sst2", "dev")
    opt = bdpl.Optimizer(backend=bdpl.CausalLMBackend(), budget=bdpl.Budget(max_queries=50_000))
    result = opt.fit(train, dev)

Backends that need torch, transformers or openai import them only when built, so
``import bdpl`` stays light.
"""

from bdpl.backends.base import Backend
from bdpl.backends.causal_lm import CausalLMBackend
from bdpl.backends.masked_lm import MaskedLMBackend
from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend, OpenAICompletionBackend
from bdpl.baselines import ManualPrompt, RandomSearch
from bdpl.data import (
    find_data_dir,
    load_split,
    make_dataset,
    read_dataset,
    read_examples,
    sample_k_shot,
)
from bdpl.demonstrations import DemonstrationTask, choose_demonstrations, with_demonstrations
from bdpl.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    BDPLError,
    BudgetExceededError,
    CacheDamagedError,
    CacheError,
    ConfigError,
    DataError,
    InvalidTaskError,
    MalformedResponseError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    ReplyTooLargeError,
    ServerError,
    UnknownPriceError,
    UnsupportedQueryError,
)
from bdpl.estimators import EstimatorState, get_estimator
from bdpl.explain import Explanation, PositionExplanation
from bdpl.metering import (
    Budget,
    CostEstimate,
    Ledger,
    Meter,
    MeterStats,
    Price,
    QueryCache,
    RetryPolicy,
    estimate_cost,
)
from bdpl.metrics import compute_metric
from bdpl.optimizer import EpochRecord, FitResult, Optimizer, OptimizerState
from bdpl.plan import FitPlan, estimate_fit_cost
from bdpl.tasks import PRESETS, Dataset, Example, Task, get_task
from bdpl.testing import FakeBackend, Planted
from bdpl.types import LabelScores, Query, Usage
from bdpl.vocab import build_vocabulary, normalize_candidates, texts_of
from bdpl.vocabulary import Vocabulary, english_words, gather_vocabulary

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AuthenticationError",
    "BDPLError",
    "Backend",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeoutError",
    "BadRequestError",
    "Budget",
    "BudgetExceededError",
    "CacheDamagedError",
    "CacheError",
    "CausalLMBackend",
    "ConfigError",
    "CostEstimate",
    "DataError",
    "Dataset",
    "DemonstrationTask",
    "EpochRecord",
    "EstimatorState",
    "Example",
    "Explanation",
    "FakeBackend",
    "FitPlan",
    "FitResult",
    "InvalidTaskError",
    "LabelScores",
    "Ledger",
    "MalformedResponseError",
    "ManualPrompt",
    "MaskedLMBackend",
    "Meter",
    "MeterStats",
    "ModelNotFoundError",
    "OpenAIBackend",
    "OpenAIChatBackend",
    "OpenAICompletionBackend",
    "Optimizer",
    "OptimizerState",
    "Planted",
    "PositionExplanation",
    "Price",
    "Query",
    "QueryCache",
    "QuotaExceededError",
    "RandomSearch",
    "RateLimitError",
    "ReplyTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Task",
    "UnknownPriceError",
    "UnsupportedQueryError",
    "Usage",
    "Vocabulary",
    "__version__",
    "build_vocabulary",
    "choose_demonstrations",
    "compute_metric",
    "english_words",
    "estimate_cost",
    "estimate_fit_cost",
    "find_data_dir",
    "gather_vocabulary",
    "get_estimator",
    "get_task",
    "load_split",
    "make_dataset",
    "normalize_candidates",
    "read_dataset",
    "read_examples",
    "sample_k_shot",
    "texts_of",
    "with_demonstrations",
]
