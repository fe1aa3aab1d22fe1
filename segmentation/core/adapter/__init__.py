"""Fine-tune the segmentation network on corrections: LoRA adapters on a frozen Cellpose CPnet.

Sub-modules: :mod:`.data` (:class:`TrainingExample`, examples from corrections, planes, flow
targets and augmented batches), :mod:`.params` (:class:`AdapterParams`,
:class:`AdapterTrainingParams`), :mod:`.model` (:class:`ModelAdapter`: training loop,
checkpoints and files) and :mod:`.evaluation` (scores of a model on held-out examples). Import
from this package, not from them; nothing here imports torch until an adapter is built.

Two modules beside this package are what :mod:`segmentation.core.modelzoo` needs to load an
adapter as a model, so they sit below both: :mod:`segmentation.core.lora` (the low-rank Conv2d
layers, injecting and merging them; imports torch) and :mod:`segmentation.core.adapter_file`
(the file format: :data:`ADAPTER_FORMAT`, :func:`read_adapter_file`, its checks).

An adapter file is a model name: ``load_model("adapters/lab1.pt")`` (and so
``SegmentationParams(model_name="adapters/lab1.pt")``) loads the base model it was trained on,
checks the base's SHA-256 and merges the adapter into a private copy of the base weights.
"""

from ..adapter_file import ADAPTER_FORMAT, read_adapter_file
from .data import TrainingExample, correction_example
from .evaluation import compare_models, evaluate_model
from .model import ModelAdapter
from .params import AdapterParams, AdapterTrainingParams

__all__ = [
    "ADAPTER_FORMAT", "AdapterParams", "AdapterTrainingParams", "ModelAdapter", "TrainingExample",
    "compare_models", "correction_example", "evaluate_model", "read_adapter_file",
]
