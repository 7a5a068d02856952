"""The metering layer: every query to a backend goes through :class:`Meter`.

It caches paid answers on disk (:class:`QueryCache`), records every paid call in a ledger
(:class:`Ledger`), keeps spending within a :class:`Budget`, prices usage (:class:`Price`, the
shipped price table), retries what is retryable (:class:`RetryPolicy`, on tenacity) and can
estimate a run's worst-case cost before it starts (:func:`estimate_cost`; a fit's own estimate
is :meth:`bdpl.Optimizer.estimate_cost`, as the metering layer knows nothing of the optimizer).
"""

from bdpl.metering.budget import Budget, Reservation, Spend
from bdpl.metering.cache import CACHE_FORMAT_VERSION, CacheStats, QueryCache, cache_key
from bdpl.metering.cache_repair import CacheReport, RepairReport, check_cache, repair_cache
from bdpl.metering.estimate import CostEstimate, estimate_cost
from bdpl.metering.ledger import Ledger, LedgerRecord, LedgerSummary, format_summary
from bdpl.metering.meter import Meter, MeterStats, default_cache
from bdpl.metering.prices import FREE, Price, price_for, price_table
from bdpl.metering.retry import RetryPolicy
from bdpl.metering.tokens import count_tokens, estimate_usage

__all__ = [
    "CACHE_FORMAT_VERSION",
    "FREE",
    "Budget",
    "CacheReport",
    "CacheStats",
    "CostEstimate",
    "Ledger",
    "LedgerRecord",
    "LedgerSummary",
    "Meter",
    "MeterStats",
    "Price",
    "QueryCache",
    "RepairReport",
    "Reservation",
    "RetryPolicy",
    "Spend",
    "cache_key",
    "check_cache",
    "count_tokens",
    "default_cache",
    "estimate_cost",
    "estimate_usage",
    "format_summary",
    "price_for",
    "price_table",
    "repair_cache",
]
