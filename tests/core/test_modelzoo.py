"""segmentation.core.modelzoo: where a model name points, the shipped defaults, the weights' hash."""

import hashlib
import json

import pytest

from segmentation.core.errors import ModelNotAvailableError
from segmentation.core.modelzoo import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_3D,
    SHIPPED_MODELS_DIR,
    default_model_for,
    file_sha256,
    load_model,
    resolve_model,
    shipped_models,
)


def test_it_ships_both_defaults_with_their_cards():
    assert {DEFAULT_MODEL, DEFAULT_MODEL_3D} <= set(shipped_models())
    for name in (DEFAULT_MODEL, DEFAULT_MODEL_3D):
        assert json.loads((SHIPPED_MODELS_DIR / f"{name}.json").read_text())["name"] == name



@pytest.mark.parametrize("name", shipped_models())
def test_each_shipped_models_training_record_names_the_hash_of_the_file_shipped(name):
    # The model cards point users to the record for the weights' SHA-256: it must be the file's.
    record = json.loads((SHIPPED_MODELS_DIR / f"{name}.train.json").read_text())
    assert record["sha256"] == file_sha256(SHIPPED_MODELS_DIR / f"{name}.pt")

@pytest.mark.parametrize("shape, expected", [
    ((64, 64), DEFAULT_MODEL), ((1, 64, 64), DEFAULT_MODEL), ((2, 64, 64), DEFAULT_MODEL_3D),
    ((16, 128, 128), DEFAULT_MODEL_3D),
])
def test_it_picks_the_stack_model_for_two_planes_or_more(shape, expected):
    assert default_model_for(shape) == expected


@pytest.mark.parametrize("name", [None, "", "default", DEFAULT_MODEL])
def test_it_resolves_the_default_names_to_the_shipped_file(name):
    ref = resolve_model(name)
    assert (ref.name, ref.kind, ref.path) == (DEFAULT_MODEL, "shipped", SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.pt")


def test_it_resolves_a_file_and_refuses_what_does_not_exist(tmp_path):
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"not read yet")
    ref = resolve_model(str(weights))
    assert (ref.name, ref.kind, ref.path) == ("mine.pt", "file", weights.resolve())
    with pytest.raises(ModelNotAvailableError, match="model file not found"):
        resolve_model(str(tmp_path / "gone.pt"))
    with pytest.raises(ModelNotAvailableError, match="unknown model 'nope'"):
        resolve_model("nope")


def test_it_hashes_a_file_a_block_at_a_time_as_hashlib_does_whole(tmp_path):
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * 9000)  # past one 1 MiB block
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_it_loads_the_shipped_default_once_and_names_its_card_version():
    model = load_model(DEFAULT_MODEL)
    card = json.loads((SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.json").read_text())
    assert (model.kind, model.version) == ("shipped", card["version"])
    assert model.sha256 == file_sha256(SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.pt")
    assert load_model(DEFAULT_MODEL) is model  # cached per process
    assert load_model(DEFAULT_MODEL, fresh=True) is not model
