"""What the 3D view and the drawings across planes cost in the core.

* ``nucleus_mesh`` on every nucleus of a generated 24 x 256 x 256 stack (voxels 2 x 0.5 x 0.5
  µm), each on its bounding box plus one voxel (as the mesh endpoint reads it), at the
  endpoint's default bound of 6000 triangles; against the reference in the same run, scikit-image's
  ``marching_cubes`` alone on the same boxes (no smoothing, no simplification);
* the same on one large nucleus (a ball of 40 µm across: 20 planes, 80 x 80 pixels, 0.1 M
  voxels) and a huge one (2 M voxels), with the triangles before and after simplification;
* ``interpolate_sections`` between outlines 2, 8 and 32 planes apart on 256 x 256 planes.

Prints milliseconds (median and 95th percentile over the nuclei, or the best of 3 runs) and
the ratios to the reference.

    python bench/meshes.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segmentation.core import synthetic  # noqa: E402
from segmentation.core.drawing3d import interpolate_sections  # noqa: E402
from segmentation.core.meshes import nucleus_mesh  # noqa: E402

VOXEL = (2.0, 0.5, 0.5)
BOUND = 6000


def _best(run, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def _boxes(labels):
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            yield i, tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)


def _ball(diameter_um: float) -> np.ndarray:
    r = diameter_um / 2
    shape = tuple(int(np.ceil(diameter_um / v)) + 4 for v in VOXEL)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    inside = sum(((g - n / 2) * v) ** 2 for g, n, v in zip(grids, shape, VOXEL, strict=True)) <= r * r
    return inside.astype(np.uint32)


def main() -> None:
    from skimage.measure import marching_cubes

    sample = synthetic.generate_3d(shape=(24, 256, 256), seed=5)
    labels = sample.labels.astype(np.uint32)
    ours, reference, triangles = [], [], []
    for i, box in _boxes(labels):
        crop = labels[box]
        start = time.perf_counter()
        mesh = nucleus_mesh(crop, i, voxel_size=VOXEL, max_triangles=BOUND)
        ours.append(1000 * (time.perf_counter() - start))
        triangles.append(mesh.n_triangles)
        start = time.perf_counter()
        marching_cubes(np.pad((crop == i).astype(np.float32), 1), level=0.5, spacing=VOXEL)
        reference.append(1000 * (time.perf_counter() - start))
    n = len(ours)
    p = lambda xs, q: float(np.percentile(xs, q))  # noqa: E731
    print(f"nucleus_mesh over {n} generated nuclei (24 x 256 x 256 stack, voxels {VOXEL} µm, bound {BOUND}):")
    print(f"  ours       p50 {p(ours, 50):7.2f} ms  p95 {p(ours, 95):7.2f} ms  "
          f"triangles p50 {statistics.median(triangles):.0f}, max {max(triangles)}")
    print(f"  reference  p50 {p(reference, 50):7.2f} ms  p95 {p(reference, 95):7.2f} ms  (marching_cubes alone)")
    print(f"  ratio p50 {p(ours, 50) / p(reference, 50):.2f}x")
    for name, diameter in (("large", 40.0), ("huge", 100.0)):
        ball = _ball(diameter)
        voxels = int(ball.sum())
        full = marching_cubes(np.pad(ball.astype(np.float32), 1), level=0.5, spacing=VOXEL)[1]
        ms = _best(lambda ball=ball: nucleus_mesh(ball, 1, voxel_size=VOXEL, max_triangles=BOUND))
        ref = _best(lambda ball=ball: marching_cubes(np.pad(ball.astype(np.float32), 1), level=0.5, spacing=VOXEL))
        mesh = nucleus_mesh(ball, 1, voxel_size=VOXEL, max_triangles=BOUND)
        print(f"{name} ball, {diameter:g} µm across, {voxels:,} voxels: {ms:.0f} ms (reference {ref:.0f} ms, "
              f"{ms / ref:.2f}x); {len(full):,} triangles -> {mesh.n_triangles:,}")
    yy, xx = np.ogrid[:256, :256]
    small = (yy - 128) ** 2 + (xx - 128) ** 2 <= 20 ** 2
    large = (yy - 140) ** 2 + (xx - 110) ** 2 <= 60 ** 2
    for gap in (2, 8, 32):
        ms = _best(lambda gap=gap: interpolate_sections([(0, small), (gap, large)], (gap + 1, 256, 256)))
        print(f"interpolate_sections, outlines {gap} planes apart on 256 x 256 planes: {ms:.1f} ms "
              f"({ms / max(gap - 1, 1):.2f} ms a plane between)")


if __name__ == "__main__":
    main()
