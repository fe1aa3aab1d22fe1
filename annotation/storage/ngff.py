"""OME-NGFF 0.5 metadata: what this package writes, and what it reads from other writers.

Written (zarr v3, all under the ``"ome"`` attribute key as NGFF 0.5 requires)::

    volume.zarr/                     multiscales (axes z, y, x in micrometres), omero window
        0/ 1/ ...                    intensity levels, chunks (1, 256, 256)
        labels/                      {"labels": ["v1", "v2", ...]}
            v1/                      image-label + multiscales (uint32)
                0/ 1/ ...

Read (for import): NGFF 0.4 (zarr v2, metadata at the top level of the attributes) and 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NGFF_VERSION", "image_attributes", "label_attributes", "labels_group_attributes",
           "read_multiscale", "unit_to_micrometre"]

NGFF_VERSION = "0.5"

_AXES = [{"name": n, "type": "space", "unit": "micrometer"} for n in ("z", "y", "x")]

# NGFF and OME-XML unit names, in micrometres.
_UNITS = {
    "angstrom": 1e-4, "å": 1e-4, "picometer": 1e-6, "pm": 1e-6, "nanometer": 1e-3, "nm": 1e-3,
    "micrometer": 1.0, "micron": 1.0, "µm": 1.0, "μm": 1.0, "um": 1.0, "millimeter": 1e3,
    "mm": 1e3, "centimeter": 1e4, "cm": 1e4, "meter": 1e6, "m": 1e6,
}


def unit_to_micrometre(unit: str | None) -> float | None:
    """Micrometres per ``unit`` (``None`` counts as micrometres); ``None`` if unknown."""
    if unit is None:
        return 1.0
    return _UNITS.get(str(unit).strip().lower())


def _datasets(shapes: list[tuple[int, int, int]], voxel_size: tuple[float, float, float],
              *, centred: bool) -> list[dict[str, Any]]:
    out = []
    for level in range(len(shapes)):
        factor = 2 ** level
        scale = [voxel_size[0], voxel_size[1] * factor, voxel_size[2] * factor]
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if centred and level:
            # A mean of a 2**k block sits at the centre of the block, half a block minus half a
            # pixel from its first pixel; subsampled labels sit on their first pixel.
            shift = (factor - 1) / 2
            transforms.append({"type": "translation",
                               "translation": [0.0, voxel_size[1] * shift, voxel_size[2] * shift]})
        out.append({"path": str(level), "coordinateTransformations": transforms})
    return out


def image_attributes(*, name: str, shapes: list[tuple[int, int, int]], voxel_size: tuple[float, float, float],
                     dtype: np.dtype, contrast_limits: tuple[float, float]) -> dict[str, Any]:
    """The ``"ome"`` attributes of an intensity image with ``len(shapes)`` levels."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        lo, hi = contrast_limits
        dmin, dmax = min(lo, 0.0), max(hi, 1.0)
    else:
        dmin, dmax = float(np.iinfo(dtype).min), float(np.iinfo(dtype).max)
    return {
        "version": NGFF_VERSION,
        "multiscales": [{
            "name": name, "axes": _AXES,
            "datasets": _datasets(shapes, voxel_size, centred=True),
            "type": "mean",
            "metadata": {"method": "2x2 mean in y, x; z kept"},
        }],
        "omero": {
            "name": name,
            "channels": [{
                "label": name or "intensity", "color": "FFFFFF", "active": True,
                "window": {"start": contrast_limits[0], "end": contrast_limits[1], "min": dmin, "max": dmax},
            }],
            "rdefs": {"model": "greyscale", "defaultZ": shapes[0][0] // 2},
        },
    }


def label_attributes(*, name: str, shapes: list[tuple[int, int, int]], voxel_size: tuple[float, float, float],
                     source_image: str | None = "../../") -> dict[str, Any]:
    """The ``"ome"`` attributes of a label image (``image-label`` plus its multiscales)."""
    image_label: dict[str, Any] = {"version": NGFF_VERSION}
    if source_image is not None:
        image_label["source"] = {"image": source_image}
    return {
        "version": NGFF_VERSION,
        "image-label": image_label,
        "multiscales": [{
            "name": name, "axes": _AXES,
            "datasets": _datasets(shapes, voxel_size, centred=False),
            "type": "subsample",
            "metadata": {"method": "[::2, ::2] in y, x; z kept"},
        }],
    }


def labels_group_attributes(names: list[str]) -> dict[str, Any]:
    """The ``"ome"`` attributes of the ``labels`` group."""
    return {"version": NGFF_VERSION, "labels": list(names)}


def read_multiscale(attributes: dict[str, Any]) -> dict[str, Any] | None:
    """The first multiscale of an NGFF 0.4 or 0.5 image, normalised; ``None`` if there is none.

    Returns
    -------
    dict with ``path`` (level 0's array, relative to the group), ``axes`` (lower-case names,
    e.g. ``["c", "z", "y", "x"]``) and ``scale`` (micrometres per pixel along each axis, 1.0
    where not spatial or unknown).
    """
    ome = attributes.get("ome", attributes)
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not multiscales or not isinstance(multiscales, list) or not isinstance(multiscales[0], dict):
        return None
    first = multiscales[0]
    datasets = first.get("datasets") or []
    if not datasets or "path" not in datasets[0]:
        return None
    raw_axes = first.get("axes")
    if raw_axes is None:  # NGFF 0.1-0.2: always 5D
        raw_axes = ["t", "c", "z", "y", "x"]
    names, factors = [], []
    for axis in raw_axes:
        axis = {"name": axis} if isinstance(axis, str) else dict(axis)
        names.append(str(axis.get("name", "")).lower())
        factor = unit_to_micrometre(axis.get("unit")) if axis.get("type", "space") == "space" else None
        factors.append(factor)
    scale = [1.0] * len(names)
    for transforms in (datasets[0].get("coordinateTransformations"), first.get("coordinateTransformations")):
        for transform in transforms or []:
            if transform.get("type") == "scale" and len(transform.get("scale", [])) == len(names):
                scale = [s * float(t) for s, t in zip(scale, transform["scale"], strict=True)]
    scale = [s * f if f is not None else 1.0 for s, f in zip(scale, factors, strict=True)]
    return {"path": str(datasets[0]["path"]), "axes": names, "scale": scale}
