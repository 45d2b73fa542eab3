"""The HTTP service: FastAPI over one loaded :class:`~tagrank.tagger.Tagger`.

* ``POST /v1/tags`` - photos as multipart uploads (field ``photos``, repeatable) with form fields
  ``top``, ``threshold`` and ``vocab`` (a named vocabulary, or tags separated by commas or newlines,
  or a JSON list); returns what ``tagrank rank --format json`` writes: one record per photo,
  ``{"image", "tags": [{"rank", "tag", "score", "confidence"}]}`` or ``{"image", "error"}``.
* ``GET /v1/health``, ``GET /v1/vocabularies``, ``GET /`` (the web page), ``/openapi.json`` (the API's
  description; no /docs page: Swagger UI's scripts would come from a CDN).

Every problem is a 4xx JSON ``{"error": ...}`` naming it: a bad option (400/422), an unknown vocabulary
(400), an upload or a request over its size limit (413), and a request whose photos all fail to decode (422; when
only some fail, the others are tagged and the failed ones get an ``error`` record, as ``rank`` does).
Uploads are only ever read from memory: no request reads or writes a file by a name it chooses.
"""

import asyncio
import io
import json
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at runtime.
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from tagrank import __version__
from tagrank.errors import TagrankError
from tagrank.images.photos import ImageError, load_image
from tagrank.serve.batcher import Batcher, Job
from tagrank.tagger import Tagger
from tagrank.labels.vocab import load_vocabulary, named_vocabularies

PAGE = Path(__file__).resolve().parent / "page.html"


@dataclass
class ServeSettings:
    max_batch: int = 32  # photos per CNN batch, across concurrent requests
    max_wait_ms: float = 10.0  # how long the first photo of a batch waits for others
    max_upload_mb: float = 20.0  # per photo
    max_request_mb: float = 100.0  # a whole request, refused as soon as it is announced or passed
    max_photos: int = 64  # per request
    max_inline_tags: int = 20000  # tags in an inline vocabulary
    max_pixels: int = 50_000_000  # per photo: a 97 kB PNG can hold 100 MP (0.3 GB decoded); cameras give 12-50
    decoders: int = 2  # photos decoded at once, across requests: bounds the memory decoding takes
    backend: str = "auto"  # where the CNN runs (tagrank.images.runtimes): a service tags many photos, so auto
                           # takes the fastest installed


class _StrictTextParser(MultiPartParser):
    """Multipart form fields as text in their charset, or refused: Starlette reads bytes that are not valid in it
    as Latin-1, so the field 'th\\xff\\xfe' became the tag 'thÿþ'."""

    def on_part_end(self) -> None:
        if self._current_part.file is None:
            try:
                bytes(self._current_part.data).decode(self._charset)
            except (UnicodeDecodeError, LookupError):
                raise MultiPartException(f"form field {self._current_part.field_name!r} is not valid "
                                         f"{self._charset or 'utf-8'} text") from None
        super().on_part_end()


class _StrictFormRequest(Request):
    """A request whose multipart form is read by :class:`_StrictTextParser` (other bodies as Starlette reads them)."""

    async def _get_form(self, *, max_files=1000, max_fields=1000, max_part_size=1024 * 1024):
        if self._form is None and self.headers.get("content-type", "").startswith("multipart/form-data"):
            parser = _StrictTextParser(self.headers, self.stream(), max_files=max_files, max_fields=max_fields,
                                       max_part_size=max_part_size)
            try:
                self._form = await parser.parse()
            except MultiPartException as exc:
                raise StarletteHTTPException(status_code=400, detail=exc.message) from None
        return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class _StrictFormRoute(APIRoute):
    """Routes whose requests read their forms with :class:`_StrictTextParser`."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict(request: Request):
            return await handler(_StrictFormRequest(request.scope, request.receive))

        return strict


class _RequestLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 as soon as its Content-Length announces it or
    its bytes pass it, so no oversized upload is read whole or spooled to disk."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request over the {self.limit / 2 ** 20:g} MB limit"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await _send_json(send, 413, {"error": message})
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            event = await receive()
            seen += len(event.get("body", b""))
            if seen > self.limit:
                over = True
                return {"type": "http.disconnect"}  # the app stops reading here
            return event

        async def guarded(event):
            nonlocal started
            if over:  # whatever the app answers to the cut body, the client learns why
                if not started:
                    started = True
                    await _send_json(send, 413, {"error": message})
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
            if not started:
                await _send_json(send, 413, {"error": message})


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


@lru_cache(maxsize=None)
def _named(name: str) -> tuple[str, ...]:
    return tuple(load_vocabulary(name))


def parse_vocab(value: str | None, settings: ServeSettings) -> tuple[str, ...] | None:
    """None (the model's default vocabulary), a named one, or an inline list of tags."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.startswith("["):
        try:
            tags = json.loads(value)
        except ValueError as exc:
            raise TagrankError(f"vocab: not a JSON list of tags ({exc})") from None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TagrankError("vocab: a JSON vocabulary must be a list of strings")
    elif value in named_vocabularies():
        return _named(value)
    elif "," in value or "\n" in value:
        tags = value.replace("\n", ",").split(",")
    else:
        raise TagrankError(f"vocab: unknown vocabulary {value!r}: one of {', '.join(named_vocabularies())}, "
                           "or tags separated by commas or newlines, or a JSON list")
    tags = [t.strip() for t in tags if t.strip()]
    if not tags:
        raise TagrankError("vocab: empty vocabulary")
    if len(tags) > settings.max_inline_tags:
        raise TagrankError(f"vocab: {len(tags)} tags inline, the limit is {settings.max_inline_tags}")
    return tuple(tags)


def create_app(tagger: Tagger, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``tagger``; its batcher thread starts now and stops with the app."""
    settings = settings or ServeSettings()
    from tagrank.images.runtimes import AUTO_MIN_PHOTOS

    # converted (or read from the cache) before the first request
    forward = tagger.forward_pass(settings.backend, AUTO_MIN_PHOTOS)
    batcher = Batcher(tagger, settings.max_batch, settings.max_wait_ms / 1000, forward)
    limit = int(settings.max_upload_mb * 1024 * 1024)

    @asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    # /docs and /redoc would load their scripts from a CDN (blank offline): the API is described at /openapi.json
    app = FastAPI(title="tagrank", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Rank any vocabulary of tags for a photo.")
    app.router.route_class = _StrictFormRoute
    app.state.batcher = batcher
    app.add_middleware(_RequestLimit, limit=int(settings.max_request_mb * 2 ** 20))
    decoding = threading.BoundedSemaphore(settings.decoders)
    preparing = threading.BoundedSemaphore(1)

    @app.exception_handler(TagrankError)
    async def user_error(request: Request, exc: TagrankError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):  # 404, 405, a malformed multipart body
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())[1:]) or "request", e.get("msg", ""))
                    for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems)}, status_code=422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/v1/health")
    async def health() -> dict:
        return {"status": "ok", "method": tagger.name, "default_vocabulary_size": len(tagger.default_tags),
                "batches": batcher.batches, "photos": batcher.photos}

    @app.get("/v1/vocabularies")
    async def vocabularies() -> dict:
        return {"default": {"size": len(tagger.default_tags), "first": tagger.default_tags[:20]},
                "named": {name: len(_named(name)) for name in named_vocabularies()}}

    def prepare(tags: tuple[str, ...]):
        """An inline or named vocabulary, embedded off the batcher's thread, one at a time (a 20k-tag list must
        not take every core), and never written to the disk caches (each request may bring a new one)."""
        with preparing:
            return tagger.warm(tagger.prepare(list(tags), persist=False))

    def decode(data: bytes, name: str):
        with decoding:
            return tagger.backbone.preprocess(load_image(io.BytesIO(data), name=name, max_pixels=settings.max_pixels,
                                                         min_side=tagger.backbone.decode_side))

    @app.post("/v1/tags")
    async def tags(photos: list[UploadFile] = File(..., description="one or more photos"),
                   top: int = Form(5, description="tags per photo"),
                   threshold: float | None = Form(None, description="keep tags with at least this confidence (0-1)"),
                   vocab: str | None = Form(None, description="a named vocabulary, or tags separated by commas "
                                                             "or newlines, or a JSON list")):
        if top <= 0:
            raise TagrankError(f"top must be a positive number, got {top}")
        if len(photos) > settings.max_photos:
            raise TagrankError(f"{len(photos)} photos in one request, the limit is {settings.max_photos}")
        tagger.check_threshold(threshold, "threshold")
        tag_list = parse_vocab(vocab, settings)
        names, arrays, records = [], [], []
        for i, photo in enumerate(photos):
            name = photo.filename or f"photo {i + 1}"
            data = await photo.read(limit + 1)
            if len(data) > limit:
                return JSONResponse({"error": f"{name}: upload over the {settings.max_upload_mb:g} MB limit"},
                                    status_code=413)
            try:
                arrays.append(await run_in_threadpool(decode, data, name))
                names.append(name)
                records.append(None)
            except ImageError as exc:
                records.append({"image": name, "error": str(exc)})
        if not arrays:
            errors = [r["error"] for r in records]
            return JSONResponse({"error": "; ".join(errors), "results": records}, status_code=422)
        prepared = await run_in_threadpool(prepare, tag_list) if tag_list is not None else None
        ranked = iter(await asyncio.wrap_future(batcher.submit(Job(arrays, prepared, top, threshold))))
        names_left = iter(names)
        return [r if r is not None else {"image": next(names_left), "tags": next(ranked)} for r in records]

    return app
