import pytest

from annotation.storage import LabelVersionMeta, StorageError, VolumeMeta


def _meta(**changes):
    fields = dict(shape=(2, 600, 300), dtype="uint16", voxel_size=(2.0, 0.5, 0.5),
                  level_shapes=[(2, 600, 300), (2, 300, 150), (2, 150, 75)],
                  contrast_limits=(10.0, 900.0), source_name="a.tif")
    fields.update(changes)
    return VolumeMeta(**fields)


def test_it_round_trips_volume_meta_through_a_dict():
    meta = _meta()
    assert VolumeMeta.from_dict(meta.to_dict()) == meta
    assert meta.level_shapes[1] == (2, 300, 150) and meta.n_levels == 3 and meta.is_3d
    assert meta.tile_grid(0) == (3, 2) and meta.chunk == (1, 256, 256)


@pytest.mark.parametrize("change", [
    dict(shape=(0, 10, 10)), dict(shape=(10, 10)), dict(dtype="complex64"), dict(dtype="nonsense"),
    dict(voxel_size=(1.0, -1.0, 1.0)), dict(level_shapes=[(2, 600, 300), (2, 301, 150)]),
    dict(contrast_limits=(5.0, 1.0)), dict(contrast_limits=(float("nan"), 1.0)), dict(source_name=3),
])
def test_it_refuses_invalid_volume_meta(change):
    with pytest.raises(StorageError):
        _meta(**change)


def test_it_refuses_unknown_fields():
    with pytest.raises(StorageError, match="unknown"):
        VolumeMeta.from_dict({**_meta().to_dict(), "colour": "red"})


def test_it_round_trips_label_version_meta_and_validates_names():
    meta = LabelVersionMeta(name="v2", number=2, parent="v1", shape=(1, 5, 5), n_labels=3,
                            chunks_written=1, chunks_linked=2)
    assert LabelVersionMeta.from_dict(meta.to_dict()) == meta
    for bad in (dict(name="v3"), dict(parent="x1"), dict(n_labels=-1), dict(chunks_copied=9)):
        with pytest.raises(StorageError):
            LabelVersionMeta(**{**dict(name="v2", number=2, parent="v1", shape=(1, 5, 5)), **bad})
