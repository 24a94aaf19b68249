"""Building blocks of the config schemas: a strict base model that refuses unknown
keys, the value types every group shares (counts, fractions, seeds, names), and
the `_target_` dispatch that picks a schema by the class a config builds.

Strict on purpose: Hydra already parses `seed=3` as an int and `lr=1e-3` as a
float, so a string where a number belongs is a typo, not something to coerce.
Whole floats (`trainer.max_epochs=3.0`, a best epoch read back from JSON) are the
one coercion, because they mean the same count.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, NoReturn

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

TARGET = "_target_"
NAME_CHARS = "letters, digits, '.', '_' and '-' (it becomes part of a folder name)"


class Schema(BaseModel):
    """One config node: its keys, their types and ranges. Unknown keys are refused
    by name, so a typo (`model.l2reg`) never passes silently."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = [field.alias or name for name, field in cls.model_fields.items()]
            unknown = [str(key) for key in data if key not in known]
            if unknown:
                raise PydanticCustomError(
                    "unknown_key", "unknown key; known: {known}", {"key": unknown[0], "known": ", ".join(known)}
                )
        return data

    @classmethod
    def builds(cls) -> str | None:
        """The class path this schema's `_target_` names (None for plain nodes)."""
        field = cls.model_fields.get("target_")
        return typing.get_args(field.annotation)[0] if field is not None else None


def fail(key: str, value: Any, rule: str) -> NoReturn:
    """Refuse one key of the node being validated (for rules across keys)."""
    raise PydanticCustomError("key_rule", rule, {"key": key, "value": value})


def refuse(rule: str) -> NoReturn:
    """Refuse the value a field validator was given."""
    raise PydanticCustomError("rule", rule)


def optional() -> Any:
    """A key that may be left out, the constructor's own default then applying; a
    value given (null included, unless the type allows it) is still checked."""
    return Field(default=None)


def _whole(value: Any) -> Any:
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("whole_number", "must be a whole number")
        return int(value)
    return value


def _name(value: str) -> str:
    if not value or not (value[0].isalnum() and all(c.isalnum() or c in "._-" for c in value)):
        raise PydanticCustomError("name", "must start with a letter or digit and hold only " + NAME_CHARS)
    return value


def _instant(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("instant", "must be an ISO 8601 time, e.g. 2026-03-01T00:00:00+00:00") from None
    return value


def _day(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("day", "must be an ISO date, e.g. 2026-01-01") from None
    return value


Int = Annotated[int, BeforeValidator(_whole)]
PositiveInt = Annotated[Int, Field(ge=1)]
Count = Annotated[Int, Field(ge=0)]
Seed = Annotated[Int, Field(ge=0, le=2**32 - 1)]
# Sizes that allocate memory get generous upper bounds: a typo (dim=640000000) is
# refused in one line instead of failing deep in an allocator with a traceback.
Width = Annotated[Int, Field(ge=1, le=65_536)]  # an embedding or layer width, factors
Batch = Annotated[Int, Field(ge=1, le=10_000_000)]
Resamples = Annotated[Int, Field(ge=1, le=1_000_000)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
OpenUnit = Annotated[float, Field(gt=0, lt=1)]
Dropout = Annotated[float, Field(ge=0, lt=1)]
Text = Annotated[str, Field(min_length=1)]
Name = Annotated[str, AfterValidator(_name)]
Instant = Annotated[str, AfterValidator(_instant)]
Day = Annotated[str, AfterValidator(_day)]


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, bool | int | float | str):
        refuse("must be a number, text or true/false")
    return value


Scalar = Annotated[Any, BeforeValidator(_scalar)]  # one value, never a list or a mapping


def by_target(kind: str, schemas: Sequence[type[BaseModel]]) -> Any:
    """A field type that validates a node with the schema whose `_target_` it
    names; any other `_target_` is refused, so only the project's own classes
    (and the listed library ones) can be configured."""
    targets = [typing.get_args(schema.model_fields["target_"].annotation)[0] for schema in schemas]
    tags = {f"<{target}>": schema for target, schema in zip(targets, schemas, strict=True)}
    known = ", ".join(str(target).rsplit(".", 1)[-1] for target in targets)

    def pick(value: Any) -> str | None:
        return f"<{value.get(TARGET)}>" if isinstance(value, dict) else None

    members = tuple(Annotated[schema, Tag(tag)] for tag, schema in tags.items())
    return Annotated[
        typing.Union[members],  # noqa: UP007 (a runtime tuple of members)
        Discriminator(pick, custom_error_type="unknown_target", custom_error_message=f"must name a {kind}: {known}"),
    ]
