"""The 3D backends' options, each declared once: name, kind, default, bounds, help, and which
backends read it.

Everything else is derived from :data:`BACKEND_OPTIONS`: the :class:`~.params.SegmentationParams`
fields' defaults and their validation (:meth:`BackendOption.check`), the linking parameters'
(:class:`~.linking.LinkingParams`, for the ``hybrid2d3d`` options), each registered backend's
``options`` (:func:`~.backends.register`) and the viewer's job form (``backend_catalogue()``:
one field per option, under the backends that read it). An option is a field of
``SegmentationParams`` of the same name (``tests/core/test_backend_options.py`` checks it), so
a job stores it in its parameters and the API takes it by name.

This module imports only the shared checks, so every parameter class can read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._validation import check_bool, check_choice, check_number, describe_bounds
from .errors import InvalidParameterError

__all__ = ["BACKEND_OPTIONS", "OPTION_KINDS", "BackendOption", "backend_options_of", "option_default"]

#: What an option holds, and how the form shows it: a number field (``number``: any step,
#: ``integer``: whole numbers), a menu (``choice``) or a check box (``bool``).
OPTION_KINDS = ("number", "integer", "choice", "bool")


@dataclass(frozen=True)
class BackendOption:
    """One parameter a backend reads.

    Parameters
    ----------
    name : the :class:`~.params.SegmentationParams` field (and the JSON key of a job's parameters).
    default : its value when a job names none.
    label, help : the form's label and its one-line explanation.
    backends : the names of the backends that read it (the form shows it under each).
    kind : one of :data:`OPTION_KINDS`.
    low, high : bounds of a number (None: unbounded), closed unless ``low_open``/``high_open``.
    off : a number outside the bounds that turns the rule off (``max_z_elongation``'s 0).
    step : the form's step for a number.
    choices : the values of a ``choice``.
    """

    name: str
    default: Any
    label: str
    help: str
    backends: tuple[str, ...]
    kind: str = "number"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    off: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in OPTION_KINDS:
            raise ValueError(f"option {self.name}: kind {self.kind!r} is none of {', '.join(OPTION_KINDS)}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"option {self.name}: a choice lists its choices, and only a choice does")
        if not self.backends:
            raise ValueError(f"option {self.name}: no backend reads it")
        self.check(self.default)  # a default its own rule refuses is a mistake here, not a user's

    def check(self, value: Any) -> Any:
        """``value`` (a plain Python value) when the option's rule allows it; else raise
        :class:`~.errors.InvalidParameterError` naming the option and its rule."""
        if self.kind == "bool":
            return check_bool(self.name, value)
        if self.kind == "choice":
            return check_choice(self.name, value, self.choices)
        if self.off is not None and not isinstance(value, bool) and value == self.off:
            return value if type(value) is int else float(value)
        bounds = {key: bound for key, bound in (("low", self.low), ("high", self.high)) if bound is not None}
        try:
            return check_number(self.name, value, low_open=self.low_open, high_open=self.high_open,
                                integer=self.kind == "integer", **bounds)
        except InvalidParameterError:
            if self.off is None:
                raise
            raise InvalidParameterError(f"{self.name} must be {self.rule}, got {value!r}") from None

    @property
    def rule(self) -> str:
        """Its rule in words, as its check's message says it (``"a number in [0, 10]"``)."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        rule = describe_bounds(low, high, self.low_open, self.high_open, self.kind == "integer")
        return rule if self.off is None else f"{self.off:g} (off) or {rule}"

    def to_dict(self) -> dict[str, Any]:
        """The option as the viewer's form shows it: ``low``/``high`` are the field's ``min``/``max``
        (the ``off`` value included; an open bound is the server's to refuse)."""
        low = self.low if self.off is None or self.low is None else min(self.low, self.off)
        return {"name": self.name, "label": self.label, "help": self.help, "kind": self.kind, "low": low,
                "high": self.high, "step": self.step, "choices": list(self.choices), "default": self.default}


_HYBRID = ("hybrid2d3d",)
_TRUE3D = ("true3d",)

#: Every backend option, by name, in the order the form lists them.
BACKEND_OPTIONS: dict[str, BackendOption] = {option.name: option for option in (
    BackendOption("min_overlap_ratio", 0.3, "Link overlap", "the smallest overlap of two planes' masks that links "
                  "them (more than 0, at most 1)", _HYBRID, low=0, low_open=True, high=1, step=0.05),
    BackendOption("max_distance_z", 2, "Link gap (planes)", "how many planes back a nucleus may be continued from "
                  "(1: adjacent planes only)", _HYBRID, kind="integer", low=1, step=1),
    BackendOption("overlap_measure", "iou", "Overlap measure", "iou, or intersection over the smaller mask",
                  _HYBRID, kind="choice", choices=("iou", "intersection_over_smaller")),
    BackendOption("split_dip", 0.7, "Split at a dip", "cut a track where its section profile dips to this fraction "
                  "of the smaller peak (0: never)", _HYBRID, low=0, high=1, high_open=True, step=0.05),
    BackendOption("max_z_elongation", 2.5, "Longest in z", "cut a track longer in z than this many times its widest "
                  "section, 1 to 100 (0: never)", _HYBRID, low=1, high=100, off=0, step=0.1),
    BackendOption("flow3d_smooth", 1.0, "Flow smoothing (voxels)", "sigma of the Gaussian that smooths the 3D flow "
                  "field (0: none)", _TRUE3D, low=0, high=10, step=0.5),
    BackendOption("isotropic_masks", True, "Isotropic masks", "follow the flows on planes one pixel apart and take "
                  "the masks back to the stack's planes (off: on the stack's own planes, Cellpose's rule)", _TRUE3D,
                  kind="bool"),
    BackendOption("z_trim", 0.0, "Trim z blur", "drop a nucleus's end planes whose mean brightness above the "
                  "background is below this fraction of its brightest plane's (0: keep all)", _TRUE3D,
                  low=0, high=1, high_open=True, step=0.05),
)}


def option_default(name: str) -> Any:
    """The declared default of option ``name``: what the parameter classes' fields default to."""
    return BACKEND_OPTIONS[name].default


def backend_options_of(backend: str) -> tuple[BackendOption, ...]:
    """The options backend ``backend`` reads, in the form's order."""
    return tuple(option for option in BACKEND_OPTIONS.values() if backend in option.backends)

