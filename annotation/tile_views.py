"""Image and label tiles for the browser viewer: plain Django views, built for many small requests.

``GET /api/v1/volumes/<id>/tiles/<level>/<z>/<ty>/<tx>.<png|webp>?lo=&hi=&size=256|512``
    8-bit greyscale tile of plane ``z`` of pyramid ``level``: pixels ``[ty*size, (ty+1)*size)``
    x ``[tx*size, (tx+1)*size)`` (edge tiles are smaller), mapped through the display window
    ``[lo, hi]`` (the volume's stored contrast limits where not given).
``GET /api/v1/volumes/<id>/labels/<version>/tiles/<level>/<z>/<ty>/<tx>.png?size=256|512``
    The label version's ids in the same tile, packed into RGB (``id = r | g << 8 | b << 16``,
    see ``annotation.storage.tiles``).
``GET /api/v1/volumes/<id>/labels/<version>/uncertainty/<level>/<z>/<ty>/<tx>.png?size=``
    The uncertainty heat map of the same tile: each nucleus coloured by its score (RGBA,
    background and unscored nuclei transparent); the scores of a version are read once per
    process (versions are immutable).

``GET /api/v1/volumes/<id>/tiles/<xz|yz>/<level>/<index>/<ty>/<tx>.<png|webp>?lo=&hi=&size=``, and
``.../labels/<version>/tiles/<xz|yz>/...``, ``.../labels/<version>/uncertainty/<xz|yz>/...``
    The same three kinds of tile of an orthogonal plane: the XZ plane at row ``y = index`` or
    the YZ plane at column ``x = index`` of pyramid ``level`` (in that level's pixels), with z
    downwards and stretched to the physical aspect (``annotation.storage.ortho``). Same
    answers, caching and cost as an XY tile (one chunk read: the planes are stored in a second
    chunk layout for this).

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
Stores are opened once per process (``annotation.stores``). A 304 reads no pixels. Encoded
tiles are kept in a per-process LRU of ``EZQUANT_TILE_CACHE_BYTES`` (keyed by ETag, which names
everything the bytes depend on), so a class opening the same volume reads and encodes each
tile once; the membership check still runs on every request.

The work is done by :func:`answer_tile`, which knows nothing of the request object. Two doors
lead to it: the Django views below (``manage.py runserver``, WSGI, the test client) and, under
ASGI, :class:`annotation.tile_asgi.TileRouter`, which answers tile URLs before Django's
middleware (whose per-request thread hops cost more than reading and encoding a tile).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_etags
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.storage import (
    StorageError,
    TileOutOfRangeError,
    encode_image_tile,
    encode_label_tile,
    encode_score_tile,
    score_lookup,
)
from annotation.storage.ortho import ORTHO_PLANES, ortho_shape
from annotation.stores import volume_store_at

__all__ = ["TileAnswer", "answer_tile", "image_tile", "label_tile", "tile_cache", "uncertainty_tile"]

TILE_SIZES = (256, 512)
IMAGE_FORMATS = {"png": "image/png", "webp": "image/webp"}
CACHE_CONTROL = "private, max-age=31536000, immutable"


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class TileAnswer:
    """What to send: a status, headers and the body (empty for a 304)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _whole(value: str, what: str) -> int:
    if not value.isdigit() or not value.isascii():
        raise _Refusal(400, f"{what} must be a whole number >= 0, got {value!r}")
    if len(value.lstrip("0")) > 9:  # no index has that many digits (and int() refuses 4,300 and more)
        raise _Refusal(404, f"{what} {value[:12]}... lies outside the volume")
    return int(value)


def _finite(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Refusal(400, f"{what} must be a finite number, got {value!r}")
    return number


def _credentials(authorization: str | None, session_user_id: Callable[[], int | None]) -> dict:
    """``{"token": key}`` or ``{"user_id": id}``, as DRF's TokenAuthentication and
    SessionAuthentication would accept them; 401 otherwise. The session is only looked at
    when there is no Authorization header."""
    if authorization:
        parts = authorization.split()
        if len(parts) != 2 or parts[0].lower() != "token":
            raise _Refusal(401, "Invalid token header.")
        return {"token": parts[1]}
    user_id = session_user_id()
    if user_id is not None:
        return {"user_id": user_id}
    raise _Refusal(401, "Authentication credentials were not provided.")


def _store(path: str | None):
    if path is None:
        raise _Refusal(404, "Not found.")
    return volume_store_at(str(Path(settings.EZQUANT_DATA_DIR) / path))


def _check_range(store, level: int, z: int, ty: int, tx: int, size: int, plane: str = "xy") -> None:
    meta = store.meta
    if plane != "xy":
        if level >= meta.n_levels:
            raise _Refusal(404, f"level {level} is out of range: this volume has levels 0..{meta.n_levels - 1}")
        planes, rows, cols = ortho_shape(meta, plane, level)
        across = "y" if plane == "xz" else "x"
        if z >= planes:
            raise _Refusal(404, f"{plane} plane {across}={z} is out of range: level {level} has {across} "
                                f"0..{planes - 1}")
        if ty >= -(-rows // size) or tx >= -(-cols // size):
            raise _Refusal(404, f"tile ({ty}, {tx}) is out of range: the {plane} planes of level {level} have "
                                f"{-(-rows // size)} x {-(-cols // size)} tiles of {size}")
        return
    if level >= meta.n_levels:
        raise _Refusal(404, f"level {level} is out of range: this volume has levels 0..{meta.n_levels - 1}")
    if z >= meta.level_shapes[level][0]:
        raise _Refusal(404, f"plane z={z} is out of range: this volume has planes 0..{meta.level_shapes[level][0] - 1}")
    rows, cols = meta.tile_grid(level, size)
    if ty >= rows or tx >= cols:
        raise _Refusal(404, f"tile ({ty}, {tx}) is out of range: level {level} has {rows} x {cols} tiles of {size}")


class _TileCache:
    """Encoded tiles by ETag, least recently used dropped first, at most ``max_bytes`` of them."""

    def __init__(self) -> None:
        self._tiles: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, etag: str) -> bytes | None:
        with self._lock:
            body = self._tiles.get(etag)
            if body is not None:
                self._tiles.move_to_end(etag)
            return body

    def put(self, etag: str, body: bytes) -> None:
        limit = settings.EZQUANT_TILE_CACHE_BYTES
        if len(body) > limit:
            return
        with self._lock:
            if etag in self._tiles:
                return
            self._tiles[etag] = body
            self._bytes += len(body)
            while self._bytes > limit:
                self._bytes -= len(self._tiles.popitem(last=False)[1])

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()
            self._bytes = 0


tile_cache = _TileCache()

_LOOKUP_VERSIONS = 32  # heat-map lookups kept per process (one uint8 per label id each)
_lookups: OrderedDict[tuple[str, str], object] = OrderedDict()
_lookups_lock = threading.Lock()


def _score_lookup(volume_id: int, store, version: str):
    """The palette index per label id of a version (``storage.score_lookup``), read once."""
    key = (str(store.path), version)
    with _lookups_lock:
        lookup = _lookups.get(key)
        if lookup is not None:
            _lookups.move_to_end(key)
            return lookup
    lookup = score_lookup(selectors.uncertainty_scores(volume_id=volume_id, name=version),
                          store.label_version_meta(version).n_labels)
    with _lookups_lock:
        _lookups[key] = lookup
        while len(_lookups) > _LOOKUP_VERSIONS:
            _lookups.popitem(last=False)
    return lookup


def _plane_part(plane: str) -> tuple[str, ...]:
    """What the plane adds to an ETag: nothing for XY (its tags stay as they were)."""
    return () if plane == "xy" else (plane,)


def _etag(*parts) -> str:
    return '"' + hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).hexdigest() + '"'


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = parse_etags(if_none_match)
    return "*" in tags or etag in tags or etag in (t.removeprefix("W/") for t in tags)


@dataclass(frozen=True)
class TileRequest:
    """Which tile is asked for, as the route gives it (strings, checked by :func:`answer_tile`):
    ``version`` is ``None`` for an image tile; ``layer`` says what a version's tile shows,
    ``"labels"`` (the ids) or ``"uncertainty"`` (the heat map; ignored for an image tile);
    ``plane`` is ``"xy"``, or ``"xz"`` / ``"yz"`` for an orthogonal plane, whose index ``z`` is
    then a row or column."""

    volume_id: str
    version: str | None
    level: str
    z: str
    ty: str
    tx: str
    fmt: str
    layer: str = "labels"
    plane: str = "xy"


def answer_tile(tile: TileRequest, *, query: Mapping[str, str], authorization: str | None,
                session_user_id: Callable[[], int | None], if_none_match: str | None) -> TileAnswer:
    """Answer one tile request (see the module docstring). ``query`` holds ``size``, ``lo``,
    ``hi``; ``authorization`` is the header's value; ``session_user_id()`` gives the signed-in
    user's id or ``None``."""
    try:
        if tile.plane != "xy" and tile.plane not in ORTHO_PLANES:
            raise _Refusal(404, f"no plane {tile.plane!r}: planes are xy, xz and yz")
        credentials = _credentials(authorization, session_user_id)
        size_text = query.get("size", "256")
        if size_text not in ("256", "512"):
            raise _Refusal(400, f"size must be 256 or 512, got {size_text!r}")
        index = (_whole(tile.level, "level"), _whole(tile.z, "z"), _whole(tile.ty, "ty"), _whole(tile.tx, "tx"),
                 int(size_text))
        if tile.version is None:
            etag, content_type, render = _image_tile(tile, index, query, credentials)
        else:
            etag, content_type, render = _version_tile(tile, index, credentials)
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if _not_modified(if_none_match, etag):
            return TileAnswer(304, headers)
        body = tile_cache.get(etag)
        if body is None:
            body = render()
            tile_cache.put(etag, body)
        return TileAnswer(200, {"Content-Type": content_type, **headers}, body)
    except _Refusal as refusal:
        return _refused(refusal.status, refusal.message)
    except TileOutOfRangeError as exc:
        return _refused(404, str(exc))
    except StorageError as exc:
        return _refused(400, str(exc))


def _image_tile(tile: TileRequest, index: tuple[int, int, int, int, int], query: Mapping[str, str],
                credentials: dict) -> tuple[str, str, Callable[[], bytes]]:
    """The ETag, content type and renderer of an image tile, at ``query``'s contrast (``lo``,
    ``hi``) or the volume's default."""
    level, z, ty, tx, size = index
    if tile.fmt not in IMAGE_FORMATS:
        raise _Refusal(400, f"an image tile is .png or .webp, got .{tile.fmt}")
    lo_text, hi_text = query.get("lo"), query.get("hi")
    lo = _finite(lo_text, "lo") if lo_text is not None else None
    hi = _finite(hi_text, "hi") if hi_text is not None else None
    store = _store(selectors.volume_path_for_tile(volume_id=int(tile.volume_id), **credentials))
    _check_range(store, level, z, ty, tx, size, tile.plane)
    default_lo, default_hi = store.meta.contrast_limits
    if lo is not None or hi is not None:
        lo, hi = (default_lo if lo is None else lo), (default_hi if hi is None else hi)
        if lo >= hi:
            raise _Refusal(400, f"lo must be below hi, got lo={lo:g}, hi={hi:g}")
    else:
        lo, hi = default_lo, default_hi
    etag = _etag("image", tile.volume_id, store.path.name, level, z, ty, tx, size, repr(lo), repr(hi), tile.fmt,
                 *_plane_part(tile.plane))

    def render() -> bytes:
        pixels = store.read_tile(level, z, ty, tx, size) if tile.plane == "xy" \
            else store.read_ortho_tile(tile.plane, level, z, ty, tx, size)
        return encode_image_tile(pixels, lo, hi, tile.fmt)

    return etag, IMAGE_FORMATS[tile.fmt], render


def _version_tile(tile: TileRequest, index: tuple[int, int, int, int, int],
                  credentials: dict) -> tuple[str, str, Callable[[], bytes]]:
    """The ETag, content type and renderer of a label version's tile: its ids, or its uncertainty."""
    level, z, ty, tx, size = index
    if tile.fmt != "png":
        raise _Refusal(400, f"a label tile is .png, got .{tile.fmt}")
    store = _store(selectors.label_version_path_for_tile(volume_id=int(tile.volume_id), name=tile.version,
                                                         **credentials))
    _check_range(store, level, z, ty, tx, size, tile.plane)
    etag = _etag(tile.layer, tile.volume_id, store.path.name, tile.version, level, z, ty, tx, size,
                 *_plane_part(tile.plane))

    def render() -> bytes:
        labels = store.read_label_tile(tile.version, level, z, ty, tx, size) if tile.plane == "xy" \
            else store.read_label_ortho_tile(tile.version, tile.plane, level, z, ty, tx, size)
        if tile.layer == "uncertainty":
            return encode_score_tile(labels, _score_lookup(int(tile.volume_id), store, tile.version))
        return encode_label_tile(labels)

    return etag, "image/png", render


def _refused(status: int, message: str) -> TileAnswer:
    headers = {"Content-Type": "application/json"}
    if status == 401:
        headers["WWW-Authenticate"] = "Token"
    return TileAnswer(status, headers, json.dumps({"message": message, "extra": {}}).encode())


# -- the Django views -------------------------------------------------------------------------

def _http(answer: TileAnswer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


def _session_user_id(request: HttpRequest) -> Callable[[], int | None]:
    return lambda: request.user.id if request.user.is_authenticated else None


def _answer(request: HttpRequest, tile: TileRequest) -> HttpResponse:
    return _http(answer_tile(tile, query=request.GET, authorization=request.META.get("HTTP_AUTHORIZATION"),
                             session_user_id=_session_user_id(request),
                             if_none_match=request.META.get("HTTP_IF_NONE_MATCH")))


@require_GET
def image_tile(request: HttpRequest, volume_id: str, level: str, z: str, ty: str, tx: str, fmt: str,
               plane: str = "xy") -> HttpResponse:
    return _answer(request, TileRequest(volume_id, None, level, z, ty, tx, fmt, plane=plane))


@require_GET
def label_tile(request: HttpRequest, volume_id: str, version: str, level: str, z: str, ty: str, tx: str,
               fmt: str, plane: str = "xy") -> HttpResponse:
    return _answer(request, TileRequest(volume_id, version, level, z, ty, tx, fmt, plane=plane))


@require_GET
def uncertainty_tile(request: HttpRequest, volume_id: str, version: str, level: str, z: str, ty: str, tx: str,
                     fmt: str, plane: str = "xy") -> HttpResponse:
    return _answer(request, TileRequest(volume_id, version, level, z, ty, tx, fmt, layer="uncertainty", plane=plane))
