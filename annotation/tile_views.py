"""Image and label tiles for the browser viewer: plain Django views, built for many small requests.

``GET /api/v1/volumes/<id>/tiles/<level>/<z>/<ty>/<tx>.<png|webp>?lo=&hi=&size=256|512``
    8-bit greyscale tile of plane ``z`` of pyramid ``level``: pixels ``[ty*size, (ty+1)*size)``
    x ``[tx*size, (tx+1)*size)`` (edge tiles are smaller), mapped through the display window
    ``[lo, hi]`` (the volume's stored contrast limits where not given).
``GET /api/v1/volumes/<id>/labels/<version>/tiles/<level>/<z>/<ty>/<tx>.png?size=256|512``
    The label version's ids in the same tile, packed into RGB (``id = r | g << 8 | b << 16``,
    see ``annotation.storage.tiles``).

Answers: 200 with the tile; 304 when ``If-None-Match`` holds the tile's ETag; 400 for a
malformed request (a level, plane or tile index that is not a whole number >= 0, a size other
than 256 or 512, an unknown format, a ``lo``/``hi`` that is not a finite number or
``lo >= hi``); 401 without credentials; 404 for a tile outside the volume (a level, plane or
tile beyond its extent), an unknown volume or version, or a volume of a project the user is not
a member of (the same answer as the API's).

Caching: a tile's bytes depend only on the URL (a volume never changes; label versions are
immutable and named in the URL), so it is sent with ``Cache-Control: private, max-age=31536000,
immutable`` and an ETag hashed from the volume, version, level, plane, tile, size, window and
format. ``private``: only the user's own browser may keep it, as access depends on membership.

Cost per request: the same authentication as the API (API token or session) and one query
that joins the volume (or label version), the membership and, for a token, the token; no DRF.
Stores are opened once per process (``annotation.stores``). A 304 reads no pixels.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import parse_etags
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.storage import StorageError, TileOutOfRangeError, encode_image_tile, encode_label_tile
from annotation.stores import volume_store_at

__all__ = ["image_tile", "label_tile"]

TILE_SIZES = (256, 512)
IMAGE_FORMATS = {"png": "image/png", "webp": "image/webp"}
CACHE_CONTROL = "private, max-age=31536000, immutable"


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _whole(value: str, what: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise _Refusal(400, f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)


def _finite(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Refusal(400, f"{what} must be a finite number, got {value!r}")
    return number


def _tile_request(request: HttpRequest, level: str, z: str, ty: str, tx: str) -> tuple[int, int, int, int, int]:
    size = request.GET.get("size", "256")
    if size not in ("256", "512"):
        raise _Refusal(400, f"size must be 256 or 512, got {size!r}")
    return _whole(level, "level"), _whole(z, "z"), _whole(ty, "ty"), _whole(tx, "tx"), int(size)


def _credentials(request: HttpRequest) -> dict:
    """``{"token": key}`` or ``{"user_id": id}``, as DRF's TokenAuthentication and
    SessionAuthentication would accept them; 401 otherwise."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header:
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "token":
            raise _Refusal(401, "Invalid token header.")
        return {"token": parts[1]}
    if request.user.is_authenticated:
        return {"user_id": request.user.id}
    raise _Refusal(401, "Authentication credentials were not provided.")


def _store(path: str | None):
    if path is None:
        raise _Refusal(404, "Not found.")
    return volume_store_at(str(Path(settings.EZQUANT_DATA_DIR) / path))


def _check_range(store, level: int, z: int, ty: int, tx: int, size: int) -> None:
    meta = store.meta
    if level >= meta.n_levels:
        raise _Refusal(404, f"level {level} is out of range: this volume has levels 0..{meta.n_levels - 1}")
    if z >= meta.level_shapes[level][0]:
        raise _Refusal(404, f"plane z={z} is out of range: this volume has planes 0..{meta.level_shapes[level][0] - 1}")
    rows, cols = meta.tile_grid(level, size)
    if ty >= rows or tx >= cols:
        raise _Refusal(404, f"tile ({ty}, {tx}) is out of range: level {level} has {rows} x {cols} tiles of {size}")


def _etag(*parts) -> str:
    return '"' + hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).hexdigest() + '"'


def _not_modified(request: HttpRequest, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or etag in tags or etag in (t.removeprefix("W/") for t in tags)


def _answer(request: HttpRequest, etag: str, render, content_type: str) -> HttpResponse:
    if _not_modified(request, etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(render(), content_type=content_type)
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _refused(refusal: _Refusal) -> JsonResponse:
    response = JsonResponse({"message": refusal.message, "extra": {}}, status=refusal.status)
    if refusal.status == 401:
        response["WWW-Authenticate"] = 'Token'
    return response


@require_GET
def image_tile(request: HttpRequest, volume_id: str, level: str, z: str, ty: str, tx: str, fmt: str) -> HttpResponse:
    try:
        credentials = _credentials(request)
        level_, z_, ty_, tx_, size = _tile_request(request, level, z, ty, tx)
        if fmt not in IMAGE_FORMATS:
            raise _Refusal(400, f"an image tile is .png or .webp, got .{fmt}")
        lo_text, hi_text = request.GET.get("lo"), request.GET.get("hi")
        lo = _finite(lo_text, "lo") if lo_text is not None else None
        hi = _finite(hi_text, "hi") if hi_text is not None else None
        store = _store(selectors.volume_path_for_tile(volume_id=int(volume_id), **credentials))
        _check_range(store, level_, z_, ty_, tx_, size)
        default_lo, default_hi = store.meta.contrast_limits
        if lo is not None or hi is not None:
            lo, hi = (default_lo if lo is None else lo), (default_hi if hi is None else hi)
            if lo >= hi:
                raise _Refusal(400, f"lo must be below hi, got lo={lo:g}, hi={hi:g}")
        else:
            lo, hi = default_lo, default_hi
        etag = _etag("image", volume_id, store.path.name, level_, z_, ty_, tx_, size, repr(lo), repr(hi), fmt)
        return _answer(request, etag, lambda: encode_image_tile(store.read_tile(level_, z_, ty_, tx_, size), lo, hi, fmt),
                       IMAGE_FORMATS[fmt])
    except _Refusal as refusal:
        return _refused(refusal)
    except TileOutOfRangeError as exc:
        return _refused(_Refusal(404, str(exc)))
    except StorageError as exc:
        return _refused(_Refusal(400, str(exc)))


@require_GET
def label_tile(request: HttpRequest, volume_id: str, version: str, level: str, z: str, ty: str, tx: str,
               fmt: str) -> HttpResponse:
    try:
        credentials = _credentials(request)
        level_, z_, ty_, tx_, size = _tile_request(request, level, z, ty, tx)
        if fmt != "png":
            raise _Refusal(400, f"a label tile is .png, got .{fmt}")
        path = selectors.label_version_path_for_tile(volume_id=int(volume_id), name=version, **credentials)
        store = _store(path)
        _check_range(store, level_, z_, ty_, tx_, size)
        etag = _etag("labels", volume_id, store.path.name, version, level_, z_, ty_, tx_, size)
        return _answer(request, etag,
                       lambda: encode_label_tile(store.read_label_tile(version, level_, z_, ty_, tx_, size)),
                       "image/png")
    except _Refusal as refusal:
        return _refused(refusal)
    except TileOutOfRangeError as exc:
        return _refused(_Refusal(404, str(exc)))
    except StorageError as exc:
        return _refused(_Refusal(400, str(exc)))
