"""Image and label tiles: contents, caching headers, 304, and the 400/401/404 answers."""

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from annotation.storage import decode_label_tile
from annotation.storage.tiles import to_display


def _image_url(volume, level=0, z=0, ty=0, tx=0, fmt="png"):
    return reverse("image-tile", kwargs=dict(volume_id=volume.id, level=level, z=z, ty=ty, tx=tx, fmt=fmt))


def _label_url(version, level=0, z=0, ty=0, tx=0, fmt="png"):
    return reverse("label-tile", kwargs=dict(volume_id=version.volume_id, version=version.name, level=level, z=z,
                                             ty=ty, tx=tx, fmt=fmt))


def _pixels(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.mark.django_db
@pytest.mark.parametrize("ty, tx, shape", [(0, 0, (256, 256)), (1, 1, (44, 44)), (0, 1, (256, 44))])
def test_it_serves_an_image_tile_in_the_stored_window(volume_3d, client_for, alice, sample_3d, ty, tx, shape):
    response = client_for(alice).get(_image_url(volume_3d, z=4, ty=ty, tx=tx))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    pixels = _pixels(response)
    assert pixels.shape == shape and pixels.dtype == np.uint8
    expected = sample_3d[0][4, ty * 256:(ty + 1) * 256, tx * 256:(tx + 1) * 256]
    np.testing.assert_array_equal(pixels, to_display(expected, volume_3d.contrast_lo, volume_3d.contrast_hi))


@pytest.mark.django_db
def test_it_applies_lo_hi_size_and_webp(volume_3d, client_for, alice, sample_3d):
    client = client_for(alice)
    response = client.get(_image_url(volume_3d, z=2), {"lo": "8000", "hi": "12000", "size": "512"})
    np.testing.assert_array_equal(_pixels(response), to_display(sample_3d[0][2], 8000, 12000))
    level1 = client.get(_image_url(volume_3d, level=1, z=2), {"size": "512"})
    assert _pixels(level1).shape == (150, 150)
    webp = client.get(_image_url(volume_3d, fmt="webp"))
    assert webp.status_code == 200 and webp["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(webp.content)).format == "WEBP"


@pytest.mark.django_db
def test_it_serves_label_tiles_that_decode_to_the_ids(labels_v1, client_for, bob, sample_3d):
    client = client_for(bob)
    response = client.get(_label_url(labels_v1, z=5, ty=1, tx=0))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    np.testing.assert_array_equal(decode_label_tile(response.content), sample_3d[1][5, 256:, :256])
    big = client.get(_label_url(labels_v1, level=1, z=5), {"size": "512"})
    np.testing.assert_array_equal(decode_label_tile(big.content), sample_3d[1][5, ::2, ::2])


@pytest.mark.django_db
def test_it_caches_tiles_by_etag(volume_3d, labels_v1, client_for, alice):
    client = client_for(alice)
    for url, params in [(_image_url(volume_3d, z=1), {}), (_image_url(volume_3d, z=1), {"lo": "1", "hi": "2"}),
                        (_label_url(labels_v1, z=1), {})]:
        first = client.get(url, params)
        assert first["Cache-Control"] == "private, max-age=31536000, immutable"
        etag = first["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        again = client.get(url, params, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
        assert client.get(url, params, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    variants = [(0, {}), (1, {}), (0, {"size": "512"}), (0, {"lo": "0", "hi": "9"}), (1, {"lo": "0", "hi": "9"})]
    etags = {client.get(_image_url(volume_3d, z=z, tx=tx), p)["ETag"] for z in (0, 1) for tx, p in variants}
    etags.add(client.get(_image_url(volume_3d, fmt="webp"))["ETag"])
    etags.add(client.get(_label_url(labels_v1))["ETag"])
    assert len(etags) == 12  # every parameter is part of the tag


@pytest.mark.django_db
@pytest.mark.parametrize("kwargs", [dict(level=2), dict(z=8), dict(ty=2), dict(tx=2), dict(level=1, tx=1)])
def test_it_answers_404_outside_the_volume(volume_3d, labels_v1, client_for, alice, kwargs):
    client = client_for(alice)
    assert client.get(_image_url(volume_3d, **kwargs)).status_code == 404
    assert client.get(_label_url(labels_v1, **kwargs)).status_code == 404
    assert client.get(_image_url(volume_3d, ty=1), {"size": "512"}).status_code == 404


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_volume_or_version(volume_3d, labels_v1, client_for, alice):
    client = client_for(alice)
    assert client.get(reverse("image-tile", kwargs=dict(volume_id=999, level=0, z=0, ty=0, tx=0,
                                                        fmt="png"))).status_code == 404
    labels_v1.name = "v2"  # not saved: only to build the URL
    assert client.get(_label_url(labels_v1)).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("kwargs, params", [
    (dict(level="x"), {}), (dict(z="-1"), {}), (dict(ty="1.5"), {}), (dict(tx="٣"), {}), (dict(fmt="jpg"), {}),
    ({}, {"size": "300"}), ({}, {"size": "abc"}), ({}, {"lo": "5", "hi": "5"}), ({}, {"lo": "9", "hi": "1"}),
    ({}, {"lo": "nan"}), ({}, {"hi": "inf"}), ({}, {"lo": "low"}),
])
def test_it_answers_400_for_a_malformed_request(volume_3d, client_for, alice, kwargs, params):
    response = client_for(alice).get(_image_url(volume_3d, **kwargs), params)
    assert response.status_code == 400
    assert response.json()["message"]


@pytest.mark.django_db
def test_it_answers_400_for_a_label_tile_in_webp(labels_v1, client_for, alice):
    assert client_for(alice).get(_label_url(labels_v1, fmt="webp")).status_code == 400


@pytest.mark.django_db
def test_it_accepts_an_api_token(volume_3d, labels_v1, client, alice, eve):
    from rest_framework.authtoken.models import Token

    alice_key, eve_key = Token.objects.create(user=alice).key, Token.objects.create(user=eve).key
    assert client.get(_image_url(volume_3d), HTTP_AUTHORIZATION=f"Token {alice_key}").status_code == 200
    assert client.get(_label_url(labels_v1), HTTP_AUTHORIZATION=f"Token {alice_key}").status_code == 200
    assert client.get(_image_url(volume_3d), HTTP_AUTHORIZATION=f"Token {eve_key}").status_code == 404
    assert client.get(_image_url(volume_3d), HTTP_AUTHORIZATION="Token wrong").status_code == 404
    assert client.get(_image_url(volume_3d), HTTP_AUTHORIZATION="Bearer x").status_code == 401
    alice.is_active = False
    alice.save()
    assert client.get(_image_url(volume_3d), HTTP_AUTHORIZATION=f"Token {alice_key}").status_code == 404


@pytest.mark.django_db
def test_it_refuses_outsiders_and_anonymous_users(volume_3d, labels_v1, client_for, eve):
    assert client_for(eve).get(_image_url(volume_3d)).status_code == 404
    assert client_for(eve).get(_label_url(labels_v1)).status_code == 404
    anonymous = client_for().get(_image_url(volume_3d))
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    assert client_for().get(_label_url(labels_v1)).status_code == 401


@pytest.mark.django_db
def test_it_uses_one_query_per_tile_with_a_token(volume_3d, client, alice, django_assert_num_queries):
    from rest_framework.authtoken.models import Token

    key = Token.objects.create(user=alice).key
    client.get(_image_url(volume_3d), HTTP_AUTHORIZATION=f"Token {key}")  # opens the store
    with django_assert_num_queries(1):
        assert client.get(_image_url(volume_3d, z=3), HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


@pytest.mark.django_db
def test_it_keeps_encoded_tiles_in_a_bounded_cache(volume_3d, client_for, alice, settings):
    from annotation.tile_views import tile_cache

    client = client_for(alice)
    first = client.get(_image_url(volume_3d, z=6))
    assert tile_cache.get(first["ETag"]) == first.content
    assert client.get(_image_url(volume_3d, z=6)).content == first.content
    settings.EZQUANT_TILE_CACHE_BYTES = 0
    size_of_second = len(client.get(_image_url(volume_3d, z=7)).content)  # not kept: no room
    settings.EZQUANT_TILE_CACHE_BYTES = max(len(first.content), size_of_second) + 10  # room for one tile
    second = client.get(_image_url(volume_3d, z=7))
    assert tile_cache.get(second["ETag"]) == second.content
    assert tile_cache.get(first["ETag"]) is None  # the least recently used went
    settings.EZQUANT_TILE_CACHE_BYTES = 0
    third = client.get(_image_url(volume_3d, z=5))
    assert third.status_code == 200 and tile_cache.get(third["ETag"]) is None


@pytest.mark.django_db
def test_it_checks_membership_even_for_cached_tiles(volume_3d, client_for, alice, eve):
    url = _image_url(volume_3d, z=6)
    assert client_for(alice).get(url).status_code == 200
    assert client_for(eve).get(url).status_code == 404


# -- XZ and YZ planes -------------------------------------------------------------------------

def _ortho_url(name, volume_id, plane, level=0, index=0, ty=0, tx=0, fmt="png", **kwargs):
    return reverse(name, kwargs=dict(volume_id=volume_id, plane=plane, level=level, z=index, ty=ty, tx=tx, fmt=fmt,
                                     **kwargs))


def _stretched(stack, volume, plane, level, index):
    """The whole XZ (YZ) section of a level-``level`` stack, one row per displayed row."""
    from annotation.storage.ortho import ortho_shape, row_planes
    from annotation.stores import volume_store

    meta = volume_store(volume).meta
    rows = ortho_shape(meta, plane, level)[1]
    section = stack[:, index, :] if plane == "xz" else stack[:, :, index]
    return section[row_planes(meta, plane, level, 0, rows)]


@pytest.mark.django_db
@pytest.mark.parametrize("plane, level, index", [("xz", 0, 120), ("yz", 0, 33), ("xz", 1, 70), ("yz", 1, 149)])
def test_it_serves_xz_and_yz_tiles_of_the_image_labels_and_heat_map(volume_3d, labels_v1, client_for, alice,
                                                                      sample_3d, plane, level, index):
    image, labels = sample_3d
    step = 2 ** level
    client = client_for(alice)
    response = client.get(_ortho_url("image-ortho-tile", volume_3d.id, plane, level, index))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    from annotation.stores import volume_store

    level_image = volume_store(volume_3d).read_volume(level)
    expected = _stretched(level_image, volume_3d, plane, level, index)[:256, :256]
    assert expected.shape[0] == 32 // step  # 8 planes of 2 µm over 0.5 µm pixels: 4 rows a plane
    np.testing.assert_array_equal(_pixels(response), to_display(expected, volume_3d.contrast_lo,
                                                                volume_3d.contrast_hi))
    label = client.get(_ortho_url("label-ortho-tile", volume_3d.id, plane, level, index, version=labels_v1.name))
    np.testing.assert_array_equal(decode_label_tile(label.content),
                                  _stretched(labels[:, ::step, ::step], volume_3d, plane, level, index)[:256, :256])
    heat = client.get(_ortho_url("uncertainty-ortho-tile", volume_3d.id, plane, level, index,
                                 version=labels_v1.name))
    assert heat.status_code == 200 and _pixels(heat).shape == (*expected.shape, 4)


@pytest.mark.django_db
def test_it_gives_each_plane_its_own_etag_and_answers_304(volume_3d, client_for, alice):
    client = client_for(alice)
    tags = set()
    for name, kwargs in [("image-tile", dict(level=0, z=5, ty=0, tx=0, fmt="png"))]:
        tags.add(client.get(reverse(name, kwargs=dict(volume_id=volume_3d.id, **kwargs)))["ETag"])
    for plane in ("xz", "yz"):
        url = _ortho_url("image-ortho-tile", volume_3d.id, plane, index=5)
        first = client.get(url)
        assert first["Cache-Control"] == "private, max-age=31536000, immutable"
        assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
        tags.add(first["ETag"])
    assert len(tags) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("plane, kwargs", [("xz", dict(index=300)), ("yz", dict(index=300)), ("xz", dict(ty=1)),
                                           ("xz", dict(tx=2)), ("yz", dict(level=2)), ("xz", dict(level=1, tx=1))])
def test_it_answers_404_outside_the_orthogonal_planes(volume_3d, labels_v1, client_for, alice, plane, kwargs):
    client = client_for(alice)
    assert client.get(_ortho_url("image-ortho-tile", volume_3d.id, plane, **kwargs)).status_code == 404
    assert client.get(_ortho_url("label-ortho-tile", volume_3d.id, plane, version=labels_v1.name,
                                 **kwargs)).status_code == 404


@pytest.mark.django_db
def test_it_refuses_orthogonal_tiles_to_outsiders_and_anonymous_users(volume_3d, labels_v1, client_for, eve):
    image = _ortho_url("image-ortho-tile", volume_3d.id, "xz", index=3)
    label = _ortho_url("label-ortho-tile", volume_3d.id, "yz", index=3, version=labels_v1.name)
    assert client_for(eve).get(image).status_code == 404
    assert client_for(eve).get(label).status_code == 404
    assert client_for().get(image).status_code == 401
    assert client_for().get(label, {"size": "300"}).status_code == 401
    assert client_for(eve).get(image, {"size": "300"}).status_code == 400
    assert client_for().get(f"/api/v1/volumes/{volume_3d.id}/tiles/zz/0/0/0/0.png").status_code == 404
