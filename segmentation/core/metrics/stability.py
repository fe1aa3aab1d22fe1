"""Volumetric stability: the coefficient of variation of repeated measurements."""

from __future__ import annotations

import numpy as np

from segmentation.core.errors import InvalidInputError


def coefficient_of_variation(values, *, ddof: int = 0) -> float:
    """Coefficient of variation of repeated measurements, in percent.

    ``CV = std(values) / mean(values) * 100``, the guide's volumetric stability measure (run a
    segmentation several times, measure e.g. the foreground volume each time): lower is more
    reproducible.

    Parameters
    ----------
    values : (n,) array_like of float
        Repeated measurements, finite, with a non-zero mean.
    ddof : int, optional
        Delta degrees of freedom of the standard deviation; 0 (the guide's ``np.std``) gives the
        population value, 1 the sample value.

    Returns
    -------
    cv : float
        Percent; 0.0 when all values are equal.

    Raises
    ------
    InvalidInputError
        If ``values`` is empty, not finite, holds too few values for ``ddof``, or has a mean of 0.

    Examples
    --------
    >>> coefficient_of_variation([90, 100, 110])
    8.16496580927726
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise InvalidInputError("coefficient_of_variation needs at least one value")
    if arr.size <= ddof:
        raise InvalidInputError(f"coefficient_of_variation with ddof={ddof} needs more than {ddof} values")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("coefficient_of_variation got a non-finite value")
    mean = arr.mean()
    if mean == 0:
        raise InvalidInputError("coefficient_of_variation is undefined for a mean of 0")
    return float(arr.std(ddof=ddof) / abs(mean) * 100.0)
