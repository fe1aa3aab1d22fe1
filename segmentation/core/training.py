"""Train the project's default nuclei model from generated images.

The shipped weights ``segmentation/core/models/ezq_nuclei_v2.pt`` (the default) are the output of::

    python -m segmentation.core.training --init ezq_nuclei_v1 --epochs 120 --learning-rate 0.05 \
        --n-volumes 96 --out segmentation/core/models/ezq_nuclei_v2.pt

with the other defaults below (seed 0): ``ezq_nuclei_v1``'s weights trained further on the same
2D images and on sections of generated 3D stacks drawn like real ones (``synthetic.generate_3d``:
z steps of 1-5x the pixel size, an axial PSF 2-4x the lateral one, signal falling with depth,
nuclei cut by every face, dense tissue with nuclei stacked in z, grainy flickering planes).
``ezq_nuclei_v1`` itself came from ``--epochs 160`` without ``--init`` on the generator as it was
at commit b040dad (its 3D volumes have changed since; ``git checkout b040dad`` reproduces it).
Training runs on the CPU for about half an hour on two cores; it never runs in tests or CI.

The recipe follows Cellpose's own (``cellpose.train.train_seg``: flows computed from the labels,
random rotation/flip/rescale to the model's mean diameter, SGD with a warm-up and a final
halving schedule); what is ours is the data, its normalisation and a narrower network.

Network: Cellpose's CPnet with ``nbase = [2, 16, 32, 64, 128]`` instead of ``[2, 32, 64, 128,
256]`` (1.65 M instead of 6.6 M parameters), saved in float16: 3.3 MB instead of 26.5 MB, and
inference about three times faster on a CPU.

Data: 2D images from :func:`segmentation.core.synthetic.generate_2d`, xy sections of generated
3D volumes (nuclei cut off-centre, as every 3D stack shows), and zy/zx sections of those volumes
resampled to isotropic voxels (what the ``true3d`` backend shows the network). Every image is
normalised as the engine normalises what it segments: a 2D image by its own 1st-99th
percentiles, a section by the percentiles of its whole volume, so the network sees the dim deep
planes and the sparse top and bottom planes of a stack as the engine will show them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential

from .engine import normalize_intensity  # the engine's own rule: training sees what inference sees
from .modelzoo import file_sha256
from .synthetic import NucleiConfig, generate_2d, generate_3d

__all__ = ["DEFAULT_NBASE", "build_training_set", "file_sha256", "resample_isotropic",
           "train_default_model"]

DEFAULT_NBASE = (2, 16, 32, 64, 128)
DIAM_MEAN = 17.0  # Cellpose's convention for nuclei models: objects are rescaled to this diameter.
FORMAT = "ezquant-cpnet/1"

log = logging.getLogger(__name__)


def resample_isotropic(image: np.ndarray, *labels: np.ndarray, factor: float) -> tuple[np.ndarray, ...]:
    """Stretch z of a (Z, Y, X) image and label images by ``factor`` (z step / pixel size).

    What the ``true3d`` backend does before running the network on zy and zx planes: the image
    is interpolated linearly, label images (and any other integer maps) by nearest neighbour.
    ``factor <= 1`` returns the arrays unchanged. Returns ``(image, *labels)``.
    """
    if factor <= 1:
        return (image, *labels)
    return (ndi.zoom(image, (factor, 1, 1), order=1), *(ndi.zoom(lab, (factor, 1, 1), order=0) for lab in labels))


def _sections_of_volume(rng: np.random.Generator, seed: Any,
                        config: NucleiConfig | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """xy sections and isotropic zy/zx sections of one generated volume, normalised as a volume.

    The z step is drawn from 1-5x the 0.5 um pixel size and the number of planes so that the
    stack is 12-40 um deep.
    """
    pixel = 0.5
    z_step = float(rng.uniform(1.0, 5.0)) * pixel
    depth_um = float(rng.uniform(12.0, 40.0))
    nz = int(np.clip(round(depth_um / z_step), 8, 48))
    size = int(rng.choice([160, 192]))
    vol = generate_3d(shape=(nz, size, size), seed=seed, voxel_size=(z_step, pixel, pixel), config=config)
    image = normalize_intensity(vol.image)
    out = []
    for z in rng.choice(nz, size=min(3, nz), replace=False):
        out.append((image[z], relabel_sequential(vol.labels[z])[0].astype(np.uint32)))
    image_iso, labels_iso = resample_isotropic(image, vol.labels, factor=z_step / pixel)
    for axis in (1, 2):
        at = int(rng.integers(size // 5, size - size // 5))
        section = (image_iso[:, at, :], labels_iso[:, at, :]) if axis == 1 else \
            (image_iso[:, :, at], labels_iso[:, :, at])
        if section[1].shape[0] >= 16 and section[1].any():
            out.append((section[0], relabel_sequential(section[1])[0].astype(np.uint32)))
    return [(img.astype(np.float32), lab) for img, lab in out if lab.any()]


def build_training_set(seed: int = 0, n_2d: int = 480, n_volumes: int = 96,
                       config: NucleiConfig | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Generate the training images and labels, normalised as the engine normalises.

    Returns
    -------
    images, labels : lists of (Y, X) float32 and uint32 arrays of varied sizes.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n_2d):
        size = int(rng.choice([192, 256, 256, 320]))
        sample = generate_2d(shape=(size, size), seed=(seed, 2, i), config=config)
        images.append(normalize_intensity(sample.image))
        labels.append(sample.labels)
    for i in range(n_volumes):
        for image, lab in _sections_of_volume(rng, seed=(seed, 3, i), config=config):
            images.append(image)
            labels.append(lab)
    return images, labels


def _load_init(net: Any, name: str) -> dict[str, Any]:
    """Copy the weights of shipped model or EZQuant weights file ``name`` into ``net``."""
    import torch

    from .modelzoo import resolve_model

    ref = resolve_model(name)
    payload = torch.load(ref.path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"--init needs an EZQuant weights file, {ref.path} is not one")
    if list(payload["nbase"]) != list(net.nbase):
        raise ValueError(f"--init {name} has nbase {payload['nbase']}, the network to train {list(net.nbase)}")
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in payload["state_dict"].items()})
    return {"name": ref.name, "sha256": file_sha256(ref.path)}


def save_weights(net: Any, path: Path, meta: dict[str, Any]) -> None:
    """Save a CPnet as float16 tensors with the metadata needed to rebuild it."""
    import torch  # imported here: the module is imported by tooling that never trains

    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    payload = {"format": FORMAT, "nbase": list(net.nbase), "diam_mean": float(net.diam_mean.item()),
               "diam_labels": float(net.diam_labels.item()), "meta": meta, "state_dict": state}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def train_default_model(out: Path, *, seed: int = 0, n_epochs: int = 160, nimg_per_epoch: int = 64,
                        learning_rate: float = 0.1, weight_decay: float = 1e-4, batch_size: int = 8,
                        nbase: tuple[int, ...] = DEFAULT_NBASE, n_2d: int = 480,
                        n_volumes: int = 96, init: str | None = None) -> dict[str, Any]:
    """Train a CPnet on generated nuclei and save it to ``out``; return the training record.

    ``init`` names a model (shipped name or EZQuant weights file) whose weights the training
    starts from; ``None`` starts from Cellpose's random initialisation.
    """
    # torch and cellpose are imported here: importing the core must stay cheap.
    import torch
    from cellpose import train
    from cellpose.resnet_torch import CPnet

    torch.manual_seed(seed)
    np.random.seed(seed)
    t0 = time.time()
    images, labels = build_training_set(seed=seed, n_2d=n_2d, n_volumes=n_volumes)
    test_images, test_labels = build_training_set(seed=seed + 1000, n_2d=24, n_volumes=6)
    log.info("generated %d training and %d test images in %.0f s", len(images), len(test_images),
             time.time() - t0)

    net = CPnet(list(nbase), 3, sz=3, mkldnn=False, max_pool=True, diam_mean=DIAM_MEAN)
    initialised_from = _load_init(net, init) if init else None
    work = out.parent / (out.stem + "-run")
    work.mkdir(parents=True, exist_ok=True)
    _, train_losses, test_losses = train.train_seg(
        net, train_data=images, train_labels=labels, test_data=test_images, test_labels=test_labels,
        channels=[0, 0], normalize=False, batch_size=batch_size, learning_rate=learning_rate,
        weight_decay=weight_decay, SGD=True, n_epochs=n_epochs, nimg_per_epoch=nimg_per_epoch,
        save_path=str(work), save_every=20, model_name="checkpoint", min_train_masks=1)
    record = {
        "seed": seed, "n_epochs": n_epochs, "nimg_per_epoch": nimg_per_epoch,
        "learning_rate": learning_rate, "weight_decay": weight_decay, "batch_size": batch_size,
        "optimizer": "SGD momentum 0.9", "nbase": list(nbase), "diam_mean": DIAM_MEAN,
        "initialised_from": initialised_from, "n_2d": n_2d, "n_volumes": n_volumes,
        "n_train_images": len(images), "n_test_images": len(test_images),
        "train_seconds": round(time.time() - t0, 1),
        "train_loss_final": float(train_losses[-1]),
        "test_loss_curve": {int(i): float(v) for i, v in enumerate(test_losses) if v > 0},
        "torch": str(torch.__version__),
    }
    save_weights(net, out, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=160)
    parser.add_argument("--n-2d", type=int, default=480)
    parser.add_argument("--n-volumes", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--init", help="start from this model's weights (a shipped name or an EZQuant .pt)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    record = train_default_model(args.out, seed=args.seed, n_epochs=args.epochs, n_2d=args.n_2d,
                                 n_volumes=args.n_volumes, learning_rate=args.learning_rate, init=args.init)
    record["sha256"] = file_sha256(args.out)
    args.out.with_suffix(".train.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "test_loss_curve"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
