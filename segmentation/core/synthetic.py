"""Generated fluorescence nuclei in 2D and 3D, with exact ground truth.

The project trains, tests and benchmarks its own models on these images, because no real data
or pretrained weights can be downloaded where it is built. What makes generated nuclei useful
for real microscopy is how much of the real image formation they imitate, so every step below
models one thing that real widefield or confocal nuclei images show:

* nuclei of a wide range of sizes in one image (log-normal around a per-image median diameter),
  elongated, rotated, with irregular (low-order Fourier) outlines;
* touching and slightly overlapping nuclei in dense clusters; an overlapped pixel belongs to the
  nucleus it lies deepest in, as a pixel seen through two nuclei looks like the nearer centre;
* log-normal brightness per nucleus (dim and bright nuclei side by side), chromatin texture
  (band-passed noise, dark nucleoli and bright chromocentres), dimmer rims;
* a few small, bright, condensed (mitotic-like) nuclei;
* uneven background (low-frequency illumination gradient), out-of-focus haze from unlabelled
  blobs;
* Gaussian blur, optionally varying across the field, Poisson shot noise at a chosen photon
  count and Gaussian read noise around a camera offset;
* in 3D, what real z-stacks show: ellipsoids on an anisotropic grid (z steps of 1-5x the pixel
  size), an axial point-spread function 2-4x wider than the lateral one, signal falling with
  depth into the sample (scattering and absorption), nuclei cut by every face of the stack (the
  crop of a larger tissue), densely packed tissue with nuclei stacked on top of each other in z,
  and grainy low-photon planes whose brightness flickers from plane to plane.

The ground truth ``labels`` are the nuclei as drawn before blur and noise.

Examples
--------
>>> sample = generate_2d(shape=(64, 64), seed=0)
>>> sample.image.shape, sample.image.dtype.name, sample.labels.dtype.name
((64, 64), 'float32', 'uint32')
>>> int(sample.labels.max()) == sample.n_nuclei
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ._validation import Params, check_number, check_numbers
from .errors import InvalidParameterError

__all__ = ["NucleiConfig", "SyntheticImage", "generate_2d", "generate_3d", "degrade"]


@dataclass(frozen=True)
class NucleiConfig(Params):
    """Ranges the generator draws each image's properties from.

    Every range is ``(low, high)``; one value is drawn per image (per nucleus where said).

    Parameters
    ----------
    diameter_range : median nucleus diameter of an image, in pixels (xy).
    size_spread : sigma of the log-normal spread of diameters around the image median.
    density_range : fraction of the field covered by nuclei.
    elongation_range : ratio of long to short axis, per nucleus.
    irregularity : amplitude of the outline's low-order harmonics (0 = perfect ellipse).
    overlap : how far neighbours may overlap, as a fraction of the smaller radius.
    brightness_sigma : sigma of the log-normal brightness per nucleus.
    texture_range : contrast of the chromatin texture.
    rim_dimming_range : how much darker the rim is than the centre (0 = flat).
    mitotic_fraction : fraction of nuclei drawn small, round and bright.
    background_range : mean background as a fraction of the mean nucleus brightness.
    gradient_range : relative strength of the illumination gradient.
    haze_range : number of unlabelled out-of-focus blobs per 256x256 area.
    blur_range : Gaussian PSF sigma in pixels (xy).
    varying_blur_probability : chance that blur varies across the field.
    photons_range : peak photon count of an average nucleus (log-uniform); low means noisy.
    read_noise_range : Gaussian read noise in photo-electrons.
    axial_blur_ratio_range : 3D only: axial over lateral PSF sigma, both in micrometres (a
        widefield or confocal PSF is 2-4x longer along z than across).
    depth_attenuation_range : 3D only: fraction of the signal lost between the first and the
        last plane (exponential fall-off with depth; the side imaged from is drawn).
    stacked_fraction : 3D only: fraction of nuclei placed directly above or below another
        one, touching it (columns of nuclei, as in epithelia and embryos).
    face_margin : 3D only: nucleus centres may lie this many median radii outside each face of
        the volume, so nuclei are cut by every face, as in a crop of larger tissue.
    volume_density_range : 3D only: fraction of the volume filled by nuclei (dense tissue
        reaches 0.4 and more).
    plane_flicker_range : 3D only: sigma of the log-normal brightness change from plane to
        plane (lamp flicker, bleaching during the stack).
    """

    diameter_range: tuple[float, float] = (10.0, 36.0)
    size_spread: float = 0.22
    density_range: tuple[float, float] = (0.08, 0.45)
    elongation_range: tuple[float, float] = (1.0, 1.8)
    irregularity: float = 0.06
    overlap: float = 0.15
    brightness_sigma: float = 0.4
    texture_range: tuple[float, float] = (0.05, 0.45)
    rim_dimming_range: tuple[float, float] = (0.0, 0.45)
    mitotic_fraction: float = 0.04
    background_range: tuple[float, float] = (0.02, 0.35)
    gradient_range: tuple[float, float] = (0.0, 0.6)
    haze_range: tuple[float, float] = (0.0, 4.0)
    blur_range: tuple[float, float] = (0.5, 2.0)
    varying_blur_probability: float = 0.3
    photons_range: tuple[float, float] = (15.0, 2000.0)
    read_noise_range: tuple[float, float] = (0.5, 4.0)
    axial_blur_ratio_range: tuple[float, float] = (2.0, 4.0)
    depth_attenuation_range: tuple[float, float] = (0.0, 0.6)
    stacked_fraction: float = 0.2
    face_margin: float = 0.8
    volume_density_range: tuple[float, float] = (0.06, 0.42)
    plane_flicker_range: tuple[float, float] = (0.0, 0.08)

    _what = "NucleiConfig fields"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range"):
                value = check_numbers(f.name, value, lengths=(2,), low=0)
                if value[0] > value[1]:
                    raise InvalidParameterError(f"{f.name} must be (low, high) with low <= high, got {value!r}")
            else:
                value = check_number(f.name, value, low=0)
            object.__setattr__(self, f.name, value)
        if self.diameter_range[0] < 3:
            raise InvalidParameterError("diameter_range must start at 3 pixels or more")
        if self.elongation_range[0] < 1:
            raise InvalidParameterError("elongation_range must start at 1 or more")
        if self.photons_range[0] <= 0:
            raise InvalidParameterError("photons_range must be positive")
        if not self.density_range[1] < 1 or not self.volume_density_range[1] < 1:
            raise InvalidParameterError("density_range and volume_density_range must stay below 1")
        if not self.depth_attenuation_range[1] < 1:
            raise InvalidParameterError("depth_attenuation_range must stay below 1")
        if self.stacked_fraction > 1:
            raise InvalidParameterError("stacked_fraction must lie in [0, 1]")
        if self.axial_blur_ratio_range[0] <= 0:
            raise InvalidParameterError("axial_blur_ratio_range must be positive")


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image with its ground truth.

    Attributes
    ----------
    image : (Y, X) or (Z, Y, X) float32 array, camera counts (offset + signal + noise).
    labels : same shape, uint32, 0 = background, 1..n_nuclei.
    voxel_size : (y, x) or (z, y, x) in micrometres.
    params : the properties drawn for this image (diameter, photons, blur, ...).
    """

    image: np.ndarray
    labels: np.ndarray
    voxel_size: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nuclei(self) -> int:
        return int(self.labels.max())


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return float(np.exp(rng.uniform(lo, hi))) if hi > lo else float(bounds[0])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise."""
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    std = noise.std()
    return noise / std if std > 0 else noise


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    if ndim == 2:
        a = rng.uniform(0, np.pi)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


@dataclass
class _Nucleus:
    centre: np.ndarray        # in isotropic pixel units, (y, x) or (z, y, x)
    radii: np.ndarray         # semi-axes in isotropic pixels
    rotation: np.ndarray
    harmonics: np.ndarray     # (k, 2): amplitude and phase of outline harmonics 2..k+1
    brightness: float
    mitotic: bool


def _draw_nuclei(rng: np.random.Generator, extent: np.ndarray, config: NucleiConfig,
                 median_diameter: float, density: float) -> list[_Nucleus]:
    """Place nuclei by rejection sampling until the field holds the wanted density."""
    ndim = len(extent)
    # In 3D the nuclei fill the stack and the margin beyond its faces (see face_margin).
    margin = config.face_margin * median_diameter / 2.0 if ndim == 3 else 0.0
    area = float(np.prod(extent + 2 * margin))
    nuclei: list[_Nucleus] = []
    covered = 0.0
    attempts = 0
    cluster_centres = rng.uniform(0, 1, size=(max(1, rng.integers(1, 5)), ndim)) * extent
    while covered < density * area and attempts < 4000:
        attempts += 1
        mitotic = rng.random() < config.mitotic_fraction
        diameter = median_diameter * float(np.exp(rng.normal(0, config.size_spread)))
        if mitotic:
            diameter *= 0.55
        diameter = max(diameter, 4.0)
        elong = 1.0 if mitotic else _uniform(rng, config.elongation_range)
        radii = np.full(ndim, diameter / 2.0)
        radii[-1] *= np.sqrt(elong)
        radii[-2] /= np.sqrt(elong)
        if ndim == 3:
            radii[0] *= rng.uniform(0.7, 1.1)  # nuclei are often flatter in z
        if ndim == 3 and nuclei and rng.random() < config.stacked_fraction:
            # A nucleus right above or below another one, touching it: the case that linking
            # 2D sections must not merge into one long object.
            below = nuclei[int(rng.integers(len(nuclei)))]
            gap = (below.radii[0] + radii[0]) * rng.uniform(0.92, 1.1)
            shift = rng.normal(0, 0.15 * median_diameter, size=2)
            centre = below.centre + np.array([gap * rng.choice([-1.0, 1.0]), *shift])
        elif rng.random() < 0.5:
            # Half of the nuclei gather around a few cluster centres, as cells in tissue or colonies do.
            c = cluster_centres[rng.integers(len(cluster_centres))]
            centre = c + rng.normal(0, median_diameter * 1.5, size=ndim)
        elif ndim == 3:
            # Centres beyond every face: the stack is a crop of larger tissue.
            centre = rng.uniform(-margin, extent + margin)
        else:
            centre = rng.uniform(0, 1, size=ndim) * extent
        reach = (config.face_margin if ndim == 3 else 0.3) * radii
        centre = np.clip(centre, -reach, extent + reach)
        min_r = radii.min()
        ok = True
        for other in nuclei:
            d = np.linalg.norm(centre - other.centre)
            allowed = (min_r + other.radii.min()) * (1.0 - config.overlap)
            if d < allowed:
                ok = False
                break
        if not ok:
            continue
        k = 4
        harmonics = np.stack([rng.normal(0, config.irregularity, k) / np.arange(1, k + 1),
                              rng.uniform(0, 2 * np.pi, k)], axis=1)
        brightness = float(np.exp(rng.normal(0, config.brightness_sigma)))
        if mitotic:
            brightness *= 2.2
        nuclei.append(_Nucleus(centre, radii, _random_rotation(rng, ndim), harmonics, brightness, mitotic))
        covered += float(np.prod(radii)) * (np.pi if ndim == 2 else 4.0 / 3.0 * np.pi)
    return nuclei


def _nucleus_depth(nucleus: _Nucleus, grids: list[np.ndarray]) -> np.ndarray:
    """Depth inside the nucleus: 1 at the centre, 0 on the outline, negative outside."""
    rel = np.stack([g - c for g, c in zip(grids, nucleus.centre, strict=True)], axis=-1)
    local = rel @ nucleus.rotation
    scaled = local / nucleus.radii
    r = np.sqrt((scaled ** 2).sum(-1))
    # Irregular outline: modulate the radius with low-order harmonics of the in-plane angle.
    theta = np.arctan2(scaled[..., -2], scaled[..., -1])
    modulation = np.ones_like(r)
    for order, (amp, phase) in enumerate(nucleus.harmonics, start=2):
        modulation += amp * np.cos(order * theta + phase)
    return 1.0 - r / np.maximum(modulation, 0.5)


def _render(rng: np.random.Generator, grid_shape: tuple[int, ...], spacing: np.ndarray,
            nuclei: list[_Nucleus], config: NucleiConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw labels and noise-free emitter density on the sampling grid.

    ``spacing`` is the grid step in isotropic pixel units per axis (1 for y, x; >= 1 for z).
    """
    labels = np.zeros(grid_shape, np.uint32)
    depth_map = np.full(grid_shape, 0.0, np.float32)
    signal = np.zeros(grid_shape, np.float32)
    texture_contrast = _uniform(rng, config.texture_range)
    rim = _uniform(rng, config.rim_dimming_range)
    # Chromatin texture at two scales, shared by all nuclei (cheap, and looks like real speckle).
    fine = _smooth_noise(rng, grid_shape, 1.0)
    coarse = _smooth_noise(rng, grid_shape, 2.5)
    for index, nucleus in enumerate(nuclei, start=1):
        reach = nucleus.radii.max() * 1.35
        lo = np.maximum(np.floor((nucleus.centre - reach) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((nucleus.centre + reach) / spacing).astype(int) + 1, grid_shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        axes = [np.arange(a, b) * s for a, b, s in zip(lo, hi, spacing, strict=True)]
        grids = np.meshgrid(*axes, indexing="ij")
        depth = _nucleus_depth(nucleus, grids).astype(np.float32)
        inside = (depth > 0) & (depth > depth_map[box])
        if not inside.any():
            continue
        labels[box][inside] = index
        depth_map[box][inside] = depth[inside]
        d = np.clip(depth, 0, 1)
        profile = (1.0 - rim) + rim * np.sqrt(d)
        if nucleus.mitotic:
            tex = 1.0 + 0.6 * texture_contrast * fine[box]
        else:
            tex = 1.0 + texture_contrast * (0.6 * fine[box] + 0.4 * coarse[box])
        value = nucleus.brightness * profile * np.clip(tex, 0.2, None)
        signal[box][inside] = value[inside]
    # A dark nucleolus or two and bright chromocentres inside some nuclei.
    if nuclei and labels.any():
        spots = rng.random(grid_shape) < 0.002
        spots &= labels > 0
        spot_img = ndi.gaussian_filter(spots.astype(np.float32), 1.5 / spacing.clip(1))
        spot_img /= max(spot_img.max(), 1e-6)
        sign = 1.0 if rng.random() < 0.5 else -0.6
        signal = np.where(labels > 0, signal * np.clip(1.0 + sign * 0.8 * spot_img, 0.2, None), signal)
    return labels, signal


def _background(rng: np.random.Generator, grid_shape: tuple[int, ...], spacing: np.ndarray,
                config: NucleiConfig, median_diameter: float) -> np.ndarray:
    """Uneven illumination plus unlabelled out-of-focus haze, relative to nucleus brightness 1."""
    ndim = len(grid_shape)
    level = _uniform(rng, config.background_range)
    coords = np.meshgrid(*[np.linspace(-1, 1, n) for n in grid_shape], indexing="ij")
    direction = rng.normal(size=ndim)
    direction /= np.linalg.norm(direction)
    gradient = sum(c * d for c, d in zip(coords, direction, strict=True))
    strength = _uniform(rng, config.gradient_range)
    bg = level * (1.0 + strength * gradient) + level * 0.3 * _smooth_noise(
        rng, grid_shape, max(grid_shape[-1] / 6, 2.0))
    area_units = float(np.prod(grid_shape[-2:])) / (256.0 * 256.0)
    n_haze = rng.poisson(_uniform(rng, config.haze_range) * area_units)
    if n_haze:
        haze = np.zeros(grid_shape, np.float32)
        for _ in range(n_haze):
            idx = tuple(rng.integers(0, n) for n in grid_shape)
            haze[idx] = 1.0
        sigma = median_diameter * rng.uniform(0.6, 1.2) / spacing
        haze = ndi.gaussian_filter(haze, sigma)
        haze *= rng.uniform(0.1, 0.35) / max(haze.max(), 1e-9)
        bg = bg + haze
    return np.clip(bg, 0, None).astype(np.float32)


def _blur(rng: np.random.Generator, signal: np.ndarray, sigma: np.ndarray, vary: bool) -> np.ndarray:
    sharp = ndi.gaussian_filter(signal, sigma)
    if not vary:
        return sharp
    # Blur that varies across the field (tilted sample, field curvature): blend two blur levels.
    soft = ndi.gaussian_filter(signal, sigma * rng.uniform(1.8, 3.0))
    coords = np.meshgrid(*[np.linspace(0, 1, n) for n in signal.shape[-2:]], indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    w = np.clip(np.cos(angle) * coords[0] + np.sin(angle) * coords[1], 0, 1)
    return (1 - w) * sharp + w * soft


def _depth_profile(rng: np.random.Generator, nz: int, config: NucleiConfig,
                   record: dict[str, Any]) -> np.ndarray:
    """Brightness of each plane: exponential loss with depth and plane-to-plane flicker."""
    attenuation = _uniform(rng, config.depth_attenuation_range)
    depth = np.linspace(0.0, 1.0, nz) if nz > 1 else np.zeros(1)
    if rng.random() < 0.5:
        depth = depth[::-1]  # imaged from the other side
    profile = (1.0 - attenuation) ** depth
    flicker = _uniform(rng, config.plane_flicker_range)
    profile = profile * np.exp(rng.normal(0.0, flicker, nz))
    record.update({"depth_attenuation": attenuation, "plane_flicker": flicker})
    return profile.astype(np.float32)


def _camera(rng: np.random.Generator, photons_image: np.ndarray, read_noise: float,
            offset: float) -> np.ndarray:
    counts = rng.poisson(np.clip(photons_image, 0, None)).astype(np.float32)
    counts += rng.normal(0, read_noise, photons_image.shape).astype(np.float32)
    return counts + np.float32(offset)


def _generate(shape: tuple[int, ...], voxel_size: tuple[float, ...], seed: Any,
              config: NucleiConfig, blur_sigma: float | None, photons: float | None,
              diameter: float | None) -> SyntheticImage:
    if config is None:
        config = NucleiConfig()
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    spacing = np.ones(ndim)
    if ndim == 3:
        spacing[0] = voxel_size[0] / voxel_size[1]
    extent = np.array(shape, float) * spacing
    median_diameter = float(diameter) if diameter is not None else _log_uniform(rng, config.diameter_range)
    density = _uniform(rng, config.density_range)
    if ndim == 3:
        # A volume fraction of its own: an area fraction reads denser, as every slice cuts many
        # nuclei. Drawn after the 2D draws, so 2D images stay what they were.
        density = _uniform(rng, config.volume_density_range)
    nuclei = _draw_nuclei(rng, extent, config, median_diameter, density)
    labels, signal = _render(rng, shape, spacing, nuclei, config)
    # Relabel to 1..n in drawing order, dropping nuclei hidden by their neighbours or cut off.
    present = np.unique(labels)
    present = present[present > 0]
    lut = np.zeros(len(nuclei) + 1, np.uint32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint32)
    labels = lut[labels]

    background = _background(rng, shape, spacing, config, median_diameter)
    sigma_xy = float(blur_sigma) if blur_sigma is not None else _uniform(rng, config.blur_range)
    sigma = np.full(ndim, sigma_xy)
    extra: dict[str, Any] = {}
    if ndim == 3:
        # The axial PSF is 2-4x longer than the lateral one, in micrometres.
        axial_ratio = _uniform(rng, config.axial_blur_ratio_range)
        sigma[0] = max(sigma_xy * axial_ratio / spacing[0], 0.3)
        extra["axial_blur_ratio"] = axial_ratio
    vary = bool(rng.random() < config.varying_blur_probability) and blur_sigma is None
    optical = _blur(rng, signal + background, sigma, vary)
    if ndim == 3:
        optical = optical * _depth_profile(rng, shape[0], config, extra)[:, None, None]

    peak = float(photons) if photons is not None else _log_uniform(rng, config.photons_range)
    read_noise = _uniform(rng, config.read_noise_range)
    offset = float(rng.uniform(80, 120))
    image = _camera(rng, optical * peak, read_noise, offset)
    params = {
        "median_diameter": median_diameter,
        "density": density,
        "blur_sigma": sigma_xy,
        "varying_blur": vary,
        "photons": peak,
        "read_noise": read_noise,
        "offset": offset,
        "n_nuclei": int(labels.max()),
        "seed": seed if isinstance(seed, (int, type(None))) else str(seed),
        **extra,
    }
    return SyntheticImage(image=image.astype(np.float32), labels=labels, voxel_size=tuple(voxel_size),
                          params=params)


def _check_shape(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) != ndim or any(n < 8 for n in shape[-2:]) or any(n < 1 for n in shape):
        raise InvalidParameterError(f"shape must have {ndim} axes of at least 8 pixels in y and x, got {shape}")
    return shape


def generate_2d(shape: tuple[int, int] = (256, 256), seed: Any = None, *, config: NucleiConfig | None = None,
                blur_sigma: float | None = None, photons: float | None = None,
                diameter: float | None = None, pixel_size: float = 0.5) -> SyntheticImage:
    """Generate one 2D fluorescence nuclei image with its label image.

    Parameters
    ----------
    shape : (Y, X) in pixels.
    seed : anything ``numpy.random.default_rng`` accepts; the same seed gives the same image.
    config : ranges to draw from; defaults to :class:`NucleiConfig`.
    blur_sigma : Gaussian PSF sigma in pixels; ``None`` draws it (and may vary it across the field).
    photons : peak photon count of an average nucleus; ``None`` draws it. Low values give noisy images.
    diameter : median nucleus diameter in pixels; ``None`` draws it.
    pixel_size : micrometres per pixel, stored in ``voxel_size``.

    Returns
    -------
    SyntheticImage
        ``image`` (Y, X) float32 and ``labels`` (Y, X) uint32.
    """
    shape = _check_shape(shape, 2)
    return _generate(shape, (pixel_size, pixel_size), seed, config or NucleiConfig(),
                     blur_sigma, photons, diameter)


def generate_3d(shape: tuple[int, int, int] = (32, 128, 128), seed: Any = None, *,
                voxel_size: tuple[float, float, float] = (2.0, 0.5, 0.5),
                config: NucleiConfig | None = None, blur_sigma: float | None = None,
                photons: float | None = None, diameter: float | None = None) -> SyntheticImage:
    """Generate one 3D nuclei volume on an anisotropic grid.

    Parameters
    ----------
    shape : (Z, Y, X) in voxels.
    voxel_size : (z, y, x) in micrometres; y and x must be equal. A z step coarser than the
        pixel size (the usual case) samples the nuclei sparsely along z.
    diameter : median nucleus diameter in xy pixels; ``None`` draws it.

    Returns
    -------
    SyntheticImage
        ``image`` (Z, Y, X) float32 and ``labels`` (Z, Y, X) uint32; a nucleus is one label
        across all the slices it spans.
    """
    shape = _check_shape(shape, 3)
    voxel_size = tuple(float(v) for v in voxel_size)
    if len(voxel_size) != 3 or not all(np.isfinite(v) and v > 0 for v in voxel_size):
        raise InvalidParameterError(f"voxel_size must be three positive numbers, got {voxel_size}")
    if not np.isclose(voxel_size[1], voxel_size[2]):
        raise InvalidParameterError("generate_3d draws square pixels: voxel_size y and x must be equal")
    return _generate(shape, voxel_size, seed, config or NucleiConfig(), blur_sigma, photons, diameter)


def degrade(image: np.ndarray, kind: str, strength: float = 0.5, seed: Any = None) -> np.ndarray:
    """Return a degraded copy of ``image``: ``"noise"`` or ``"blur"``.

    Parameters
    ----------
    image : (Y, X) or (Z, Y, X) array, camera counts.
    kind : ``"noise"`` rescales the image to few photons and re-applies shot and read noise;
        ``"blur"`` convolves each plane with a Gaussian.
    strength : 0..1; 1 is heavy (about 5 photons at the median nucleus, or sigma 4 px).
    """
    if not 0 <= strength <= 1:
        raise InvalidParameterError(f"strength must lie in [0, 1], got {strength}")
    rng = np.random.default_rng(seed)
    img = np.asarray(image, np.float32)
    if kind == "blur":
        sigma = 0.5 + 3.5 * strength
        sig = (0,) * (img.ndim - 2) + (sigma, sigma)
        return ndi.gaussian_filter(img, sig).astype(np.float32)
    if kind == "noise":
        base = np.percentile(img, 1)
        signal = np.clip(img - base, 0, None)
        scale = np.percentile(signal, 99) or 1.0
        target_peak = float(np.exp(np.log(200.0) * (1 - strength) + np.log(5.0) * strength))
        photons = signal / scale * target_peak
        noisy = rng.poisson(photons).astype(np.float32) + rng.normal(0, 2.0, img.shape).astype(np.float32)
        return (noisy * scale / target_peak + base).astype(np.float32)
    raise InvalidParameterError(f"kind must be 'noise' or 'blur', got {kind!r}")
