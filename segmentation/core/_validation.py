"""What the core's parameter objects share: the checks of one value, and ``to_dict``/``from_dict``;
and the one rule an input image must meet (:func:`validate_image`, the engine's public name).

A parameter bundle is a frozen dataclass that validates itself in ``__post_init__`` and
round-trips through JSON (STYLE.md, after zarr-python's codecs). The checks here raise
:class:`~.errors.InvalidParameterError` with one line naming the field, what it must be and
what was given; they return the value as a plain Python number, so ``to_dict`` is JSON-ready
whatever was passed in (numpy scalars included)::

    object.__setattr__(self, "min_size", check_number("min_size", self.min_size, low=0, integer=True))

:class:`Params` gives a dataclass ``to_dict`` (tuples as lists, nested bundles as dicts) and
``from_dict`` (a JSON object, unknown fields refused, lists back to tuples for tuple fields);
:func:`check_fields` is its check of the JSON object, for dataclasses with their own
``from_dict`` (an :class:`~.editing.Edit`, a :class:`~.corrections.records.CorrectionRecord`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import numpy as np

from .errors import InvalidInputError, InvalidParameterError

__all__ = ["Params", "check_bool", "check_choice", "check_fields", "check_name", "check_number", "check_numbers",
           "describe_bounds", "validate_image"]


def describe_bounds(low: float, high: float, low_open: bool, high_open: bool, integer: bool) -> str:
    """What :func:`check_number` asks for, in words (``"a number in [0, 10]"``, ``"a positive number"``)."""
    kind = "a whole number" if integer else "a number"
    if math.isinf(low) and math.isinf(high):
        return kind if integer else "a finite number"
    if math.isinf(high):
        if low == 0 and low_open:
            return f"a positive {kind.split(' ', 1)[1]}"  # what people say: "a positive number"
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if math.isinf(low):
        return f"{kind} {'<' if high_open else '<='} {high:g}"
    return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(name: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 allow_none: bool = False) -> Any:
    """``value`` as a plain Python number when it is a finite number within the bounds (closed
    unless ``low_open``/``high_open``), ``None`` when allowed; else raise. With ``integer=True``
    an ``int``; otherwise a ``float``, but for a Python ``int``, kept as given (so a job's stored
    JSON keeps the ``20`` it was given), while numpy scalars become plain numbers.

    Examples
    --------
    >>> check_number("min_size", 15, low=0, integer=True)
    15
    >>> check_number("flow_threshold", True, low=0, high=10)
    Traceback (most recent call last):
    ...
    segmentation.core.errors.InvalidParameterError: flow_threshold must be a number in [0, 10], got True
    """
    if value is None and allow_none:
        return None
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        raise InvalidParameterError(
            f"{name} must be {describe_bounds(low, high, low_open, high_open, integer)}"
            f"{' or None' if allow_none else ''}, got {value!r}")
    if integer:
        return int(value)
    return value if type(value) is int else float(value)


def check_numbers(name: str, value: Any, *, lengths: tuple[int, ...], **bounds: Any) -> tuple:
    """``value`` as a tuple of ``len(value) in lengths`` numbers, each checked by :func:`check_number`."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__") or len(value) not in lengths:
        counts = " or ".join(str(n) for n in lengths)
        raise InvalidParameterError(f"{name} must be {counts} numbers, got {value!r}")
    return tuple(check_number(f"each {name} value", v, **bounds) for v in value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False`` (not 0, 1 or ``"yes"``); else raise."""
    if not isinstance(value, bool):
        raise InvalidParameterError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Any) -> Any:
    """``value`` when it is one of ``choices`` (a tuple, or a registry's keys); else raise."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidParameterError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_name(name: str, value: Any, *, allow_none: bool = True) -> str | None:
    """``value`` when it is a non-empty string (or ``None`` when allowed); else raise."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(
            f"{name} must be a non-empty string{' or None' if allow_none else ''}, got {value!r}")
    return value


def validate_image(image: Any, *, dtype: Any = np.float32) -> np.ndarray:
    """Return ``image`` as a (Y, X) or (Z, Y, X) array of ``dtype`` (float32; no copy when it is
    one already), or raise InvalidInputError. The engine's input rule, and restoration's.

    Refused: non-numeric arrays, fewer than 2 or more than 3 axes (a channel axis must be
    chosen before segmentation), an empty axis, planes smaller than 8x8, NaN or infinity.
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(f"image must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise InvalidInputError(
            f"image must be 2D (Y, X) or 3D (Z, Y, X), got {arr.ndim} axes of shape {arr.shape}")
    if arr.size == 0:
        raise InvalidInputError(f"image is empty (shape {arr.shape})")
    if min(arr.shape[-2:]) < 8:
        raise InvalidInputError(f"image planes must be at least 8x8 pixels, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise InvalidInputError("image contains NaN or infinite values")
    return arr


def check_fields(cls: type, data: Any, *, what: str, error: type[Exception] = InvalidParameterError,
                 require_all: bool = False) -> dict[str, Any]:
    """``data`` when it can be the keyword arguments of the dataclass ``cls``: a dict (a JSON
    object) with no key that is not a field and every field without a default; else raise
    ``error`` (:class:`~.errors.InvalidParameterError`, or the error the caller's callers
    expect: an edit raises :class:`~.errors.InvalidInputError`, which the API answers with 400).

    ``what`` names the fields in the message (``"unknown edit fields: colour"``);
    ``require_all``: fields with a default are required too (a stored record has them all).
    """
    if not isinstance(data, dict):
        raise error(f"{what} must be a JSON object, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    unknown = sorted(set(data) - {f.name for f in fields})
    if unknown:
        raise error(f"unknown {what}: {', '.join(unknown)}")
    missing = [f.name for f in fields if f.name not in data and (
        require_all or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING))]
    if missing:
        raise error(f"missing {what}: {', '.join(missing)}")
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class Params:
    """``to_dict``/``from_dict`` of a frozen parameter dataclass.

    ``_what`` names the bundle in errors (``"segmentation parameters"``). Fields whose
    annotation is a tuple are rebuilt from JSON lists; nested bundles come back as dicts,
    which the owner's ``__post_init__`` turns into objects.
    """

    _what: ClassVar[str] = "parameters"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict (tuples as lists, nested bundles as dicts)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown ones are refused."""
        check_fields(cls, data, what=cls._what)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) and "tuple" in str(fields[k].type) else v)
                      for k, v in data.items()})
