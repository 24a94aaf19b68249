"""Schema of `conf/serve/rules/` (package `serve.rules`): the business rules a
service applies to a ranked list before answering (`serving/rules.py`).

Each rule can be switched off on its own (`false` or `null`), so `serve/rules=none`
answers with the model's order and `serve.rules.max_per_category=null` only lifts
the diversity cap.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from recsys_cli.schemas._base import Count, Positive, PositiveInt, Schema, Text

Factor = Annotated[float, Field(gt=0, le=100)]  # a score multiplier; 100x is already a pin


class LowStock(Schema):
    """Demote items that are about to run out: stock known and below `below`."""

    below: PositiveInt
    factor: Annotated[float, Field(gt=0, le=1)]  # a demotion never raises a score


class NewProducts(Schema):
    """Reserve up to `slots` places of the top k for items launched within `days`."""

    days: Positive
    slots: Count


class Boost(Schema):
    """Multiply the score of every item whose `column` equals `equals` by `factor`."""

    column: Literal["brand", "category"]
    equals: Text
    factor: Factor


class Rules(Schema):
    """conf/serve/rules/*.yaml; applied in the order of the keys below."""

    in_stock_only: bool
    boosts: list[Boost]
    low_stock: LowStock | None
    max_per_category: PositiveInt | None
    new_products: NewProducts | None
