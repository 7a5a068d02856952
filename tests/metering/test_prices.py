"""Prices: the shipped table, local backends are free, unknown paid models are an error."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from bdpl.errors import ConfigError, UnknownPriceError
from bdpl.metering import FREE, Price, price_for, price_table
from bdpl.testing import FakeBackend
from bdpl.types import Usage

REQUIRED = (
    "davinci-002",
    "babbage-002",
    "gpt-3.5-turbo-instruct",
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
)


def test_table_is_package_data_dated_and_sourced() -> None:
    raw = json.loads(resources.files("bdpl.metering").joinpath("prices.json").read_text())
    date.fromisoformat(raw["updated"])
    for model in REQUIRED:
        assert model in raw["models"], model
    for model, entry in raw["models"].items():
        assert entry["source"].startswith("https://"), model
        date.fromisoformat(entry["checked"])
        assert entry["input"] >= 0 and entry["output"] >= 0
    assert price_table().get("gpt-4.1-nano") == Price(0.1, 0.4)


def test_local_is_free_and_override_wins() -> None:
    assert price_for(FakeBackend(is_local=True, model="gpt-4o")) == FREE
    assert price_for(FakeBackend(is_local=False, model="gpt-4o")) == Price(2.5, 10.0)
    assert price_for(FakeBackend(is_local=True), Price(1, 2)) == Price(1, 2)


def test_unknown_paid_model_names_itself_and_the_fix() -> None:
    with pytest.raises(UnknownPriceError) as info:
        price_for(FakeBackend(is_local=False, model="ft:gpt-4o-mini:acme::x1"))
    msg = str(info.value)
    assert "ft:gpt-4o-mini:acme::x1" in msg and "price=Price(" in msg


def test_cost_and_validation() -> None:
    assert Price(2.0, 8.0).cost(Usage(1_000_000, 500_000, 3)) == pytest.approx(6.0)
    for bad in (-1.0, float("inf"), "1"):
        with pytest.raises(ConfigError):
            Price(bad, 1.0)  # type: ignore[arg-type]
