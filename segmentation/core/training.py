"""Train the project's default nuclei models from generated images.

The shipped stack default ``segmentation/core/models/ezq_nuclei_v3.pt`` is the output of::

    python -m segmentation.core.training --views ortho --init ezq_nuclei_v2 --epochs 400 \
        --learning-rate 0.05 --n-volumes 400 --sections-per-axis 3 --bsize 128 \
        --out segmentation/core/models/ezq_nuclei_v3.pt

(seed 0): ``ezq_nuclei_v2``'s network, unchanged, for the xy planes, and beside it a network for
``true3d``'s zy and zx views, v2's weights trained further on zy and zx sections of generated
stacks only (:func:`build_ortho_training_set`). ``ezq_nuclei_v2`` is the output of::

    python -m segmentation.core.training --init ezq_nuclei_v1 --epochs 120 --learning-rate 0.05 \
        --n-volumes 96 --out segmentation/core/models/ezq_nuclei_v2.pt

with the other defaults below (seed 0): ``ezq_nuclei_v1``'s weights trained further on the same
2D images and on sections of generated 3D stacks drawn like real ones (``synthetic.generate_3d``:
z steps of 1-5x the pixel size, an axial PSF 2-4x the lateral one, signal falling with depth,
nuclei cut by every face, dense tissue with nuclei stacked in z, grainy flickering planes).
``ezq_nuclei_v1`` itself came from ``--epochs 160`` without ``--init`` on the generator as it was
at commit b040dad (its 3D volumes have changed since; ``git checkout b040dad`` reproduces it).
Training runs on the CPU, for half an hour to an hour and a half on two cores; it never runs in
tests or CI.

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
from dataclasses import asdict, dataclass
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

# The orthogonal-view network's stacks reach grainier and more stacked tissue than the
# generator's defaults (15-2000 photons, a fifth of the nuclei stacked): real crops of plant
# tissue and embryos are both.
ORTHO_PHOTONS_RANGE = (5.0, 2000.0)
ORTHO_STACKED_RANGE = (0.1, 0.5)

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


def _sections_of_volume(rng: np.random.Generator, seed: Any, config: NucleiConfig | None,
                        per_axis: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """xy sections and isotropic zy/zx sections of one generated volume, normalised as a volume.

    The z step is drawn from 1-5x the 0.5 um pixel size and the number of planes so that the
    stack is 12-40 um deep. Three xy planes are taken, and ``per_axis`` zy and as many zx
    sections (at random places away from the sides).
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
    for axis in [1] * per_axis + [2] * per_axis:
        at = int(rng.integers(size // 5, size - size // 5))
        section = (image_iso[:, at, :], labels_iso[:, at, :]) if axis == 1 else \
            (image_iso[:, :, at], labels_iso[:, :, at])
        if section[1].shape[0] >= 16 and section[1].any():
            out.append((section[0], relabel_sequential(section[1])[0].astype(np.uint32)))
    return [(img.astype(np.float32), lab) for img, lab in out if lab.any()]


def _ortho_sections_of_volume(rng: np.random.Generator, seed: Any, config: NucleiConfig | None,
                              per_axis: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``per_axis`` zy and as many zx sections of one generated volume, as ``true3d`` shows them
    to the network: the stack restored and normalised as the engine does by default (restoration
    ``auto``, each plane by its own range) and stretched to isotropic voxels.

    The z step is drawn from 1-5x the 0.5 um pixel size, the depth from 8-40 um; sections are
    taken anywhere across the stack, its sides included (real crops cut nuclei on every face).
    Without ``config``, the generator's defaults with :data:`ORTHO_PHOTONS_RANGE` photons and a
    fraction of stacked nuclei drawn from :data:`ORTHO_STACKED_RANGE` per stack.
    """
    from .engine import plane_intensity_ranges
    from .restoration import restore

    pixel = 0.5
    z_step = float(rng.uniform(1.0, 5.0)) * pixel
    depth_um = float(rng.uniform(8.0, 40.0))
    nz = int(np.clip(round(depth_um / z_step), 4, 64))
    size = int(rng.choice([160, 192]))
    stacked = float(rng.uniform(*ORTHO_STACKED_RANGE))
    if config is None:
        config = NucleiConfig(photons_range=ORTHO_PHOTONS_RANGE, stacked_fraction=stacked)
    vol = generate_3d(shape=(nz, size, size), seed=seed, voxel_size=(z_step, pixel, pixel), config=config)
    data, _ = restore(vol.image, "auto")
    image = normalize_intensity(data, plane_intensity_ranges(data))
    image_iso, labels_iso = resample_isotropic(image, vol.labels, factor=z_step / pixel)
    out = []
    for axis in [1] * per_axis + [2] * per_axis:
        at = int(rng.integers(0, size))
        section = (image_iso[:, at, :], labels_iso[:, at, :]) if axis == 1 else \
            (image_iso[:, :, at], labels_iso[:, :, at])
        if section[1].shape[0] >= 16 and section[1].any():
            out.append((section[0].astype(np.float32), relabel_sequential(section[1])[0].astype(np.uint32)))
    return out


def build_ortho_training_set(seed: int = 0, n_volumes: int = 160, sections_per_axis: int = 3,
                             config: NucleiConfig | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """zy and zx sections of generated stacks only (:func:`_ortho_sections_of_volume`): the data
    of a model's orthogonal-view network (``--views ortho``). Returns ``images, labels``."""
    rng = np.random.default_rng(seed)
    pairs = [pair for i in range(n_volumes)
             for pair in _ortho_sections_of_volume(rng, seed=(seed, 4, i), config=config, per_axis=sections_per_axis)]
    return [image for image, _ in pairs], [lab for _, lab in pairs]


def build_training_set(seed: int = 0, n_2d: int = 480, n_volumes: int = 96,
                       config: NucleiConfig | None = None,
                       sections_per_axis: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Generate the training images and labels, normalised as the engine normalises.

    ``sections_per_axis`` zy and as many zx sections are taken of each volume (and 3 xy planes).

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
        for image, lab in _sections_of_volume(rng, seed=(seed, 3, i), config=config,
                                               per_axis=sections_per_axis):
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
    net.diam_labels.data = torch.Tensor([payload["diam_labels"]])  # as saved, not its float16 copy
    return {"name": ref.name, "sha256": file_sha256(ref.path)}


def save_weights(net: Any, path: Path, meta: dict[str, Any], *, ortho: Any = None) -> None:
    """Save a CPnet as float16 tensors with the metadata needed to rebuild it.

    ``ortho``: a second CPnet of the same shape, the network of ``true3d``'s zy and zx views
    (Cellpose's ``net_ortho``), saved beside it as ``ortho_state_dict``.
    """
    import torch  # imported here: the module is imported by tooling that never trains

    def half(module: Any) -> dict[str, Any]:
        return {k: (v.half() if v.is_floating_point() else v) for k, v in module.state_dict().items()}

    payload = {"format": FORMAT, "nbase": list(net.nbase), "diam_mean": float(net.diam_mean.item()),
               "diam_labels": float(net.diam_labels.item()), "meta": meta, "state_dict": half(net)}
    if ortho is not None:
        if list(ortho.nbase) != list(net.nbase):
            raise ValueError(f"the ortho network's nbase {list(ortho.nbase)} is not the network's {list(net.nbase)}")
        payload["ortho_state_dict"] = half(ortho)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def lr_schedule(n_epochs: int, learning_rate: float) -> np.ndarray:
    """Cellpose's learning-rate schedule, one rate per epoch.

    A linear warm-up over the first 10 epochs, then ``learning_rate``; runs of more than 100
    epochs end with ten steps that each halve the rate (5 epochs a step, or 10 beyond 300 epochs).
    """
    rates = np.concatenate([np.linspace(0, learning_rate, 10), np.full(max(0, n_epochs - 10), learning_rate)])
    if n_epochs > 100:
        step = 10 if n_epochs > 300 else 5
        rates = rates[:n_epochs - 10 * step]
        halvings = [np.full(step, rates[-1] / 2 ** (i + 1)) for i in range(10)]
        rates = np.concatenate([rates, *halvings])
    return rates[:n_epochs]


@dataclass(frozen=True)
class FitSettings:
    """What a training run is; a checkpoint is resumed only by a run with the same settings."""

    n_epochs: int
    nimg_per_epoch: int
    learning_rate: float
    weight_decay: float
    batch_size: int
    seed: int
    save_every: int = 10
    momentum: float = 0.9
    bsize: int = 224
    scale_range: float = 0.5  # Cellpose's random rescaling of each patch (its default when rescaling)
    rotate: bool = True  # random rotations; off for zy/zx sections, whose z axis stays vertical
    data: str = ""  # what the data was made from (seed, counts, initial weights), as JSON


class Checkpoint:
    """One file holding a run's network, optimizer state, losses and the next epoch.

    Written atomically (a temporary file renamed over the last one) every ``save_every`` epochs,
    so an interrupted run loses at most that many epochs and resumes exactly where it stopped:
    every epoch draws its images and augmentations from ``np.random.seed(epoch)`` (as Cellpose
    does), so a resumed run draws what the uninterrupted run would have drawn.
    """

    def __init__(self, path: Path):
        self.path = path

    def load(self, settings: FitSettings) -> dict[str, Any] | None:
        import torch

        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("settings") != asdict(settings):
            raise ValueError(f"checkpoint {self.path} is of another run ({state.get('settings')}); "
                             f"this run is {asdict(settings)}: remove it or run with those settings")
        return state

    def save(self, *, epoch: int, net: Any, optimizer: Any, settings: FitSettings,
             train_losses: np.ndarray, test_losses: np.ndarray) -> None:
        import torch

        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        torch.save({"epoch": epoch, "settings": asdict(settings), "net": net.state_dict(),
                    "optimizer": optimizer.state_dict(), "train_losses": train_losses,
                    "test_losses": test_losses}, tmp)
        tmp.replace(self.path)


def _prepare(net: Any, images, labels, test_images, test_labels) -> dict[str, Any]:
    """Flows, diameters and sampling weights of the data, computed as ``train_seg`` computes them."""
    from cellpose import models, train

    (data, flows, _, _, probs, diams, test_data, test_flows, _, _, _, test_diams, _) = train._process_train_test(
        train_data=images, train_labels=labels, test_data=test_images, test_labels=test_labels,
        load_files=False, min_train_masks=1, channels=[0, 0],
        normalize_params={**models.normalize_default, "normalize": False}, device=net.device)
    return {"data": data, "flows": flows, "probs": probs, "diams": diams,
            "test_data": test_data, "test_flows": test_flows, "test_diams": test_diams}


def _batch_loss(net: Any, data, flows, diams, indices, settings: FitSettings):
    """The loss of one augmented batch: Cellpose's flow + cell-probability loss."""
    import torch
    from cellpose import train, transforms

    scale = np.array([diams[i] for i in indices]) / net.diam_mean.item()
    patches, targets = transforms.random_rotate_and_resize(
        [data[i] for i in indices], Y=[flows[i][1:] for i in indices], rescale=scale,
        scale_range=settings.scale_range, xy=(settings.bsize, settings.bsize), rotate=settings.rotate)[:2]
    return train._loss_fn_seg(targets, net(torch.from_numpy(patches).to(net.device))[0], net.device)


def _test_loss(net: Any, prepared: dict[str, Any], settings: FitSettings) -> float:
    import torch

    data = prepared["test_data"]
    np.random.seed(42)  # the same test patches every time
    order = np.random.permutation(len(data))
    total = 0.0
    net.eval()
    with torch.no_grad():
        for start in range(0, len(order), settings.batch_size):
            indices = order[start:start + settings.batch_size]
            loss = _batch_loss(net, data, prepared["test_flows"], prepared["test_diams"], indices, settings)
            total += loss.item() * len(indices)
    return total / len(order)


def fit(net: Any, images, labels, test_images, test_labels, settings: FitSettings,
        checkpoint: Checkpoint, *, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train ``net`` with Cellpose's recipe, resuming from ``checkpoint`` when it holds this run.

    ``until`` stops after that many epochs (with a checkpoint), for a run split over sessions.
    Returns the per-epoch train losses and the test losses (every 10th epoch and epoch 5; 0
    where not measured).
    """
    import torch

    prepared = _prepare(net, images, labels, test_images, test_labels)
    net.diam_labels.data = torch.Tensor([prepared["diams"].mean()]).to(net.device)
    optimizer = torch.optim.SGD(net.parameters(), lr=settings.learning_rate, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    rates = lr_schedule(settings.n_epochs, settings.learning_rate)
    train_losses, test_losses = np.zeros(settings.n_epochs), np.zeros(settings.n_epochs)
    start = 0
    state = checkpoint.load(settings)
    if state is not None:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        train_losses, test_losses, start = state["train_losses"], state["test_losses"], state["epoch"]
        log.info("resuming from %s at epoch %d of %d", checkpoint.path, start, settings.n_epochs)
    data, flows, diams = prepared["data"], prepared["flows"], prepared["diams"]
    stop = settings.n_epochs if until is None else min(until, settings.n_epochs)
    for epoch in range(start, stop):
        np.random.seed(epoch)
        if settings.nimg_per_epoch == len(data):
            order = np.random.permutation(len(data))
        else:
            order = np.random.choice(len(data), size=settings.nimg_per_epoch, p=prepared["probs"])
        for group in optimizer.param_groups:
            group["lr"] = rates[epoch]
        net.train()
        for first in range(0, settings.nimg_per_epoch, settings.batch_size):
            indices = order[first:first + settings.batch_size]
            loss = _batch_loss(net, data, flows, diams, indices, settings)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_losses[epoch] += loss.item() * len(indices) / settings.nimg_per_epoch
        if epoch == 5 or epoch % 10 == 0:
            test_losses[epoch] = _test_loss(net, prepared, settings)
        log.info("epoch %d: train loss %.4f, test loss %.4f, learning rate %.4f", epoch, train_losses[epoch],
                 test_losses[epoch], rates[epoch])
        if (epoch + 1) % settings.save_every == 0 or epoch + 1 == stop:
            checkpoint.save(epoch=epoch + 1, net=net, optimizer=optimizer, settings=settings,
                            train_losses=train_losses, test_losses=test_losses)
    return train_losses, test_losses


def train_default_model(out: Path, *, seed: int = 0, n_epochs: int = 160, nimg_per_epoch: int = 64,
                        learning_rate: float = 0.1, weight_decay: float = 1e-4, batch_size: int = 8,
                        nbase: tuple[int, ...] = DEFAULT_NBASE, n_2d: int = 480,
                        n_volumes: int = 96, sections_per_axis: int = 1, bsize: int = 224,
                        init: str | None = None, resume: bool = False, views: str = "all",
                        n_test_volumes: int = 8) -> dict[str, Any]:
    """Train a CPnet on generated nuclei and save it to ``out``; return the training record.

    ``init`` names a model (shipped name or EZQuant weights file) whose weights the training
    starts from; ``None`` starts from Cellpose's random initialisation.
    ``sections_per_axis`` is the number of zy and of zx sections taken of each generated volume;
    ``bsize`` the side of the square patches the network is trained on (Cellpose's 224; smaller
    patches train faster per image, the network still runs on 224-pixel tiles). The run keeps a
    checkpoint in ``<out stem>-run/checkpoint.pt`` every 10 epochs; ``resume`` continues from it
    (it must be of a run with the same arguments). Without ``resume`` an existing checkpoint is
    refused rather than overwritten.
    ``views="ortho"`` trains a network for the zy and zx views of ``true3d`` only
    (:func:`build_ortho_training_set`, ``n_volumes`` stacks, ``sections_per_axis`` sections of
    each axis; no random rotation, so z stays the sections' vertical axis; ``n_2d`` unused;
    the test loss on sections of ``n_test_volumes`` stacks of other seeds).
    """
    if views not in ("all", "ortho"):
        raise ValueError(f"views must be 'all' or 'ortho', got {views!r}")
    if views == "ortho" and not init:
        raise ValueError("views='ortho' trains the orthogonal-view network of a model: give init, the model "
                         "whose network keeps the xy planes")
    # torch and cellpose are imported here: importing the core must stay cheap.
    import torch
    from cellpose.resnet_torch import CPnet

    data = json.dumps({"seed": seed, "n_2d": n_2d, "n_volumes": n_volumes, "init": init, "nbase": list(nbase),
                       **({"sections_per_axis": sections_per_axis} if sections_per_axis != 1 else {}),
                       **({"views": views} if views != "all" else {})})
    settings = FitSettings(n_epochs=n_epochs, nimg_per_epoch=nimg_per_epoch, learning_rate=learning_rate,
                           weight_decay=weight_decay, batch_size=batch_size, seed=seed, bsize=bsize, data=data,
                           rotate=views == "all")
    work = out.parent / (out.stem + "-run")
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = Checkpoint(work / "checkpoint.pt")
    if checkpoint.path.exists() and not resume:
        raise FileExistsError(f"{checkpoint.path} holds an earlier run: pass --resume to continue it, "
                              "or remove it to start again")
    torch.manual_seed(seed)
    t0 = time.time()
    if views == "ortho":
        images, labels = build_ortho_training_set(seed=seed, n_volumes=n_volumes, sections_per_axis=sections_per_axis)
        test_images, test_labels = build_ortho_training_set(seed=seed + 1000, n_volumes=n_test_volumes,
                                                            sections_per_axis=sections_per_axis)
    else:
        images, labels = build_training_set(seed=seed, n_2d=n_2d, n_volumes=n_volumes,
                                            sections_per_axis=sections_per_axis)
        test_images, test_labels = build_training_set(seed=seed + 1000, n_2d=24, n_volumes=6)
    log.info("generated %d training and %d test images in %.0f s", len(images), len(test_images),
             time.time() - t0)

    net = CPnet(list(nbase), 3, sz=3, mkldnn=False, max_pool=True, diam_mean=DIAM_MEAN)
    initialised_from = _load_init(net, init) if init else None
    train_losses, test_losses = fit(net, images, labels, test_images, test_labels, settings, checkpoint)
    record = {
        "seed": seed, "n_epochs": n_epochs, "nimg_per_epoch": nimg_per_epoch,
        "learning_rate": learning_rate, "weight_decay": weight_decay, "batch_size": batch_size,
        "optimizer": "SGD momentum 0.9", "nbase": list(nbase), "diam_mean": DIAM_MEAN,
        "initialised_from": initialised_from, "n_2d": n_2d, "n_volumes": n_volumes,
        "sections_per_axis": sections_per_axis, "bsize": bsize, "views": views,
        "n_train_images": len(images), "n_test_images": len(test_images),
        "train_seconds": round(time.time() - t0, 1),
        "train_loss_final": float(train_losses[-1]),
        "test_loss_curve": {int(i): float(v) for i, v in enumerate(test_losses) if v > 0},
        "torch": str(torch.__version__),
    }
    if views == "ortho":
        # The model: init's network for the xy planes, the one trained here for zy and zx.
        xy = CPnet(list(nbase), 3, sz=3, mkldnn=False, max_pool=True, diam_mean=DIAM_MEAN)
        _load_init(xy, init)  # its diam_labels too: the xy network is init's, unchanged
        save_weights(xy, out, record, ortho=net)
    else:
        save_weights(net, out, record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the weights (.pt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=160)
    parser.add_argument("--n-2d", type=int, default=480)
    parser.add_argument("--n-volumes", type=int, default=96)
    parser.add_argument("--sections-per-axis", type=int, default=1,
                        help="zy and zx sections taken of each generated volume (each)")
    parser.add_argument("--bsize", type=int, default=224, help="side of the training patches, pixels")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--init", help="start from this model's weights (a shipped name or an EZQuant .pt)")
    parser.add_argument("--views", choices=("all", "ortho"), default="all",
                        help="all: 2D images and xy/zy/zx sections; ortho: zy/zx sections only, for a "
                             "model's network of true3d's orthogonal views")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run of these arguments from its checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    record = train_default_model(args.out, seed=args.seed, n_epochs=args.epochs, n_2d=args.n_2d,
                                 n_volumes=args.n_volumes, sections_per_axis=args.sections_per_axis,
                                 bsize=args.bsize, learning_rate=args.learning_rate, init=args.init,
                                 resume=args.resume, views=args.views)
    record["sha256"] = file_sha256(args.out)
    args.out.with_suffix(".train.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "test_loss_curve"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
