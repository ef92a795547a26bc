"""A small guarded HTTP service for the model (Starlette app, served by uvicorn).

    MODEL_API_TOKEN=... make serve        # 127.0.0.1:8000 unless HOST / PORT are set

POST /predict with `Authorization: Bearer <token>`, `Content-Type: application/json` and a JSON
body {"rows": [{...}, ...]}. Every request passes, in order: a per-client rate limit (429 +
Retry-After), the bearer token compared in constant time (401), a body size limit (413), the
content type (415), a body read timeout (408), JSON checks (422: invalid JSON, a key given
twice) and schema checks (422 naming the field and the rule; the allowed range only when
serve.explain_ranges is true; categories, a category list, booleans and missing values
(null) as the reference profile types them), then the verified model answers: labels (numbers
or class names, as trained) with coarse confidences, or for regression the value rounded to
serve.decimals. One JSON audit line per request goes to the `audit` logger (stderr, or the file
serve.audit_log when set): time, client, method, path, status, rows, latency, the worker
(process id), and for
refusals the rule, field and full reason. Input values are never logged. Every other line the
service writes (uvicorn's own, warnings) is JSON too.
GET /health answers {"status": "ok"} without a token (for load balancers); it is
rate-limited too.

The client is the socket peer: X-Forwarded-For is believed only from the proxies listed in
serve.trusted_proxies (none by default), so a client cannot pick its own address for the rate
limit and the audit log. Slow clients are cut off: request headers must arrive within
serve.header_timeout_seconds and the body within serve.body_timeout_seconds; at
serve.max_connections the oldest connection still waiting for its headers is dropped, so a
flood of half-open connections cannot lock out a client that sends a whole request.

Workers and replicas: serve.workers uvicorn worker processes (auto: one per core when the
rate-limit store is shared, else one). The per-client limit lives in serve.rate_limit_storage
(the `limits` library's storage URI): memory:// holds for one process only, so more than one
worker with it is refused; redis://HOST:PORT is shared by every worker and replica (a store
that does not answer at start is refused; one that stops answering later turns requests into
503, never into unlimited ones). A password belongs in the environment variable
RATE_LIMIT_STORAGE (e.g. in the gitignored .env), which overrides the params.yaml value.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hmac
import ipaddress
import json
import logging
import logging.config
import math
import os
import socket
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Paths, load_params

if TYPE_CHECKING:
    from .inference import InputError, Predictor

# The name of the environment variable that holds the token (not a token itself).
TOKEN_ENV = "MODEL_API_TOKEN"  # noqa: S105  # nosec B105
# An environment variable that, when set, replaces serve.rate_limit_storage (for a password).
STORAGE_ENV = "RATE_LIMIT_STORAGE"
STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8000,
    "token_env": TOKEN_ENV,
    "rate_limit": "60/minute",
    "max_body_bytes": 262144,
    "audit_log": "",
    "trusted_proxies": [],
    "header_timeout_seconds": 5,
    "body_timeout_seconds": 10,
    "keep_alive_seconds": 5,
    "max_connections": 100,
    "explain_ranges": False,
    "workers": "auto",
    "rate_limit_storage": "memory://",
}
MIN_TOKEN_LENGTH = 16
# Rules whose InputError message holds nothing from the reference profile: the client sees it
# whole. For any other rule (a range, a category list...) the message is shortened unless
# serve.explain_ranges is true.
PLAIN_RULES = frozenset(
    {"type", "nan", "infinite", "missing_field", "unknown_field", "batch_size", "json"}
)
log = logging.getLogger(__name__)


class ServeConfigError(RuntimeError):
    """The service cannot start safely (no token, bad limit, ...). The message says how to fix."""


def _positive(settings: dict[str, Any], name: str, whole: bool = False) -> None:
    value = settings[name]
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a whole number of at least 1" if whole else "a number of seconds above 0"
        raise ServeConfigError(f"params.yaml serve.{name} is {value!r}: use {what}")


def settings_from(params: dict[str, Any]) -> dict[str, Any]:
    settings = {**DEFAULTS, **(params.get("serve") or {})}
    try:
        parse(str(settings["rate_limit"]))
    except ValueError as error:
        raise ServeConfigError(
            f"params.yaml serve.rate_limit is {settings['rate_limit']!r}: "
            "write it as COUNT/PERIOD, e.g. '60/minute' or '10/second'"
        ) from error
    size = settings["max_body_bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ServeConfigError(
            f"params.yaml serve.max_body_bytes is {size!r}: use a whole number of bytes"
        )
    for name in ("header_timeout_seconds", "body_timeout_seconds", "keep_alive_seconds"):
        _positive(settings, name)
    _positive(settings, "max_connections", whole=True)
    if not isinstance(settings["explain_ranges"], bool):
        raise ServeConfigError(
            f"params.yaml serve.explain_ranges is {settings['explain_ranges']!r}: use true or false"
        )
    proxies = settings["trusted_proxies"] or []
    if not isinstance(proxies, list):
        raise ServeConfigError(
            "params.yaml serve.trusted_proxies must be a list of proxy addresses, e.g. [10.0.0.5]"
        )
    for proxy in proxies:
        try:
            ipaddress.ip_network(str(proxy), strict=False)
        except ValueError:
            raise ServeConfigError(
                f"params.yaml serve.trusted_proxies holds {proxy!r}: list the IP addresses or "
                "networks of your reverse proxies ('*' would let any client forge its address)"
            ) from None
    settings["trusted_proxies"] = [str(p) for p in proxies]
    storage = os.environ.get(STORAGE_ENV) or settings["rate_limit_storage"]
    where = STORAGE_ENV if os.environ.get(STORAGE_ENV) else "params.yaml serve.rate_limit_storage"
    parts = urlsplit(str(storage)) if isinstance(storage, str) else None
    if parts is None or parts.scheme not in STORAGE_SCHEMES:
        raise ServeConfigError(
            f"{where} is {shown_uri(storage)!r}: use memory:// (one process) or "
            "redis://HOST:PORT (shared by workers and replicas)"
        )
    if parts.password and where != STORAGE_ENV:
        raise ServeConfigError(
            "params.yaml serve.rate_limit_storage holds a password: put the URI in the "
            f"environment variable {STORAGE_ENV} (e.g. in the gitignored .env) instead"
        )
    settings["rate_limit_storage"] = storage
    workers = settings["workers"]
    whole = isinstance(workers, int) and not isinstance(workers, bool)
    if workers != "auto" and (not whole or workers < 1):
        raise ServeConfigError(
            f"params.yaml serve.workers is {workers!r}: use auto or a whole number of at least 1"
        )
    shared = parts.scheme != "memory"
    if workers == "auto":
        settings["workers"] = cores() if shared else 1
    elif workers > 1 and not shared:
        raise ServeConfigError(
            f"params.yaml serve.workers is {workers} but the rate-limit store is memory://, "
            "where each worker would allow the whole per-client limit: set "
            "serve.rate_limit_storage: redis://HOST:PORT (shared), or serve.workers: 1"
        )
    return settings


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def shown_uri(uri: Any) -> str:
    """A storage URI without its password, for messages."""
    text = str(uri)
    parts = urlsplit(text)
    if parts.password:
        return text.replace(f":{parts.password}@", ":***@", 1)
    return text


def rate_limit_store(settings: dict[str, Any]) -> Any:
    """The `limits` storage serve.rate_limit_storage names; a shared store must answer now."""
    uri = str(settings["rate_limit_storage"])
    if uri.startswith("memory://"):
        return storage_from_string(uri)
    try:
        # bounded timeouts: a hung store fails a request (503) instead of holding it
        store = storage_from_string(uri, socket_timeout=5, socket_connect_timeout=5)
        answered = False
        # a slow answer is waited for (socket_timeout); a refused connection fails at once,
        # so a store that is just starting is asked twice more, 0.2 s and 0.4 s later
        for attempt in range(3):
            if answered := store.check():
                break
            if attempt < 2:
                time.sleep(0.2 * (attempt + 1))
    except Exception as error:  # a missing client library, a malformed URI...
        raise ServeConfigError(
            f"the rate-limit store {shown_uri(uri)} cannot be used ({type(error).__name__}: "
            f"{error}): fix serve.rate_limit_storage"
        ) from None
    if not answered:
        raise ServeConfigError(
            f"the rate-limit store {shown_uri(uri)} does not answer: start it (e.g. "
            "redis-server), or set serve.rate_limit_storage: memory:// and serve.workers: 1"
        )
    return store


def read_token(settings: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    """The API token from the environment variable named by serve.token_env; refuse weak ones."""
    name = str(settings["token_env"])
    token = (os.environ if environ is None else environ).get(name, "")
    if not token:
        raise ServeConfigError(
            f"{name} is not set: refusing to serve the model without an API token. "
            f"Set one, e.g. export {name}="
            "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ServeConfigError(
            f"{name} is shorter than {MIN_TOKEN_LENGTH} characters: use a long random token, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def audit_logger(path: str = "") -> logging.Logger:
    """The `audit` logger, writing plain JSON lines to `path` (appended) or else to stderr."""
    logger = logging.getLogger("audit")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    target = os.path.abspath(path) if path else "<stderr>"
    for handler in list(logger.handlers):
        if getattr(handler, "audit_target", None) not in (None, target):
            logger.removeHandler(handler)
            handler.close()
    if not any(getattr(h, "audit_target", None) == target for h in logger.handlers):
        handler = (
            logging.FileHandler(path, encoding="utf-8")
            if path
            else logging.StreamHandler(sys.stderr)
        )
        handler.audit_target = target  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger


class DuplicateKeyError(ValueError):
    """A JSON object names the same key twice (parsers disagree on which one wins)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def parse_json(body: bytes) -> Any:
    """JSON with every key once per object (DuplicateKeyError otherwise)."""
    return json.loads(body, object_pairs_hook=_unique_keys)


def is_json_media_type(value: str) -> bool:
    """`application/json`, optionally with `charset=utf-8` (the only encoding JSON allows)."""
    media, *options = (part.strip().lower() for part in value.split(";"))
    if media != "application/json":
        return False
    for option in options:
        name, _, given = option.partition("=")
        if name.strip() == "charset" and given.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def client_message(error: InputError, explain: bool) -> str:
    """What the client is told about a refused input: the field and the rule, and the full
    message (which may name the allowed range) only for plain rules or when `explain`."""
    if explain or error.rule in PLAIN_RULES:
        return str(error)
    where = f"row {error.row}, " if error.row is not None else ""
    return (
        f"{where}field '{error.field}': breaks the rule '{error.rule}' "
        "(the allowed values are not disclosed)"
    )


def refusal(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON refusal; the connection is closed after it when the body may be unread."""
    headers = {"Connection": "close"} if status in (408, 413, 415) else None
    return JSONResponse({"error": error, **extra, "message": message}, status, headers)


def create_app(
    paths: Paths | None = None,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    predictor: Predictor | None = None,
) -> Starlette:
    """Build the service. The token defaults to the environment (ServeConfigError if unset)."""
    paths = paths or Paths()
    params = params if params is not None else load_params(paths)
    settings = settings_from(params)
    token = read_token(settings) if token is None else token
    if len(token) < MIN_TOKEN_LENGTH:
        raise ServeConfigError(f"the API token must be at least {MIN_TOKEN_LENGTH} characters")
    expected = f"Bearer {token}".encode()
    limit = parse(str(settings["rate_limit"]))
    # the cheap refusals first (settings, token, the shared store), then the model: the
    # inference stack (numpy, pandas, scikit-learn, skops) is imported only to load it
    limiter = MovingWindowRateLimiter(rate_limit_store(settings))
    from .inference import InputError, Predictor

    predictor = predictor or Predictor(paths, params)
    max_body = int(settings["max_body_bytes"])
    body_timeout = float(settings["body_timeout_seconds"])
    explain = bool(settings["explain_ranges"])
    audit_path = str(settings["audit_log"] or "")
    audit = audit_logger(str(paths.root / audit_path) if audit_path else "")
    known_fields = {f.name for f in predictor.schema} | {"rows"}

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def rate_limited(request: Request) -> JSONResponse | None:
        key = client_of(request)
        try:
            if limiter.hit(limit, "api", key):
                return None
            reset, _ = limiter.get_window_stats(limit, "api", key)
        except Exception as error:  # the shared store stopped answering: refuse, never skip it
            request.state.audit = {"rule": "rate_limit_store", "reason": type(error).__name__}
            return refusal(503, "unavailable", "the rate-limit store does not answer; retry later")
        wait = max(1, math.ceil(reset - time.time()))
        request.state.audit = {"rule": "rate_limit"}
        return JSONResponse(
            {
                "error": "rate_limited",
                "message": f"more than {settings['rate_limit']} requests from this client; "
                f"retry after {wait} s",
            },
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    async def read_body(request: Request) -> bytes | None:
        """The body, or None when it is over max_body (TimeoutError when it is too slow)."""
        body = bytearray()
        async with asyncio.timeout(body_timeout):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > max_body:
                    return None
        return bytes(body)

    def too_large(request: Request) -> JSONResponse:
        request.state.audit = {"rule": "body_size"}
        return refusal(
            413, "too_large", f"request body over {max_body} bytes (serve.max_body_bytes)"
        )

    async def health(request: Request) -> JSONResponse:
        return rate_limited(request) or JSONResponse({"status": "ok"})

    async def predict(request: Request) -> JSONResponse:
        if (refused := rate_limited(request)) is not None:
            return refused
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            request.state.audit = {"rule": "token"}
            return JSONResponse(
                {
                    "error": "unauthorized",
                    "message": "send the API token as 'Authorization: Bearer <token>'",
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            return too_large(request)
        if not is_json_media_type(request.headers.get("content-type", "")):
            request.state.audit = {"rule": "content_type"}
            return refusal(
                415,
                "unsupported_media_type",
                "send the body as JSON with the header 'Content-Type: application/json'",
            )
        try:
            body = await read_body(request)
        except TimeoutError:
            request.state.audit = {"rule": "body_timeout"}
            return refusal(
                408,
                "timeout",
                f"the request body did not arrive within {body_timeout:g} s "
                "(serve.body_timeout_seconds)",
            )
        if body is None:
            return too_large(request)
        try:
            payload = parse_json(body)
        except DuplicateKeyError as error:
            field = str(error.key)
            request.state.audit = {
                "rule": "duplicate_key",
                "field": field if field in known_fields else "?",
            }
            return refusal(
                422,
                "invalid_input",
                f"field '{field[:64]}' appears twice in one object: send each field once",
                field=field[:64],
                rule="duplicate_key",
            )
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            request.state.audit = {"rule": "json"}
            return refusal(
                422,
                "invalid_input",
                'the body is not valid JSON: send {"rows": [{...}, ...]}',
                field="body",
                rule="json",
            )
        rows = payload.get("rows") if isinstance(payload, dict) else None
        try:
            if rows is None:
                raise InputError(
                    "rows",
                    "missing_field",
                    'is required: send {"rows": [{feature: value, ...}, ...]}',
                )
            answers = predictor.predict(rows)
        except InputError as error:
            known = error.field in known_fields
            reason = str(error) if known else str(error).replace(f"'{error.field}'", "'?'")
            request.state.audit = {
                "rule": error.rule,
                "field": error.field if known else "?",
                "reason": reason,
            }
            return refusal(
                422,
                "invalid_input",
                client_message(error, explain),
                field=error.field,
                rule=error.rule,
                row=error.row,
            )
        request.state.rows = len(answers)
        return JSONResponse({"predictions": answers})

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ]
    )
    audited = AuditMiddleware(app, audit)
    if settings["trusted_proxies"]:
        # Only these peers may say who the client is (X-Forwarded-For); anyone else is the
        # client itself, whatever headers it sends.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        return ProxyHeadersMiddleware(audited, settings["trusted_proxies"])  # type: ignore[return-value]
    return audited  # type: ignore[return-value]


class AuditMiddleware:
    """Pure ASGI wrapper: one JSON line per HTTP request, written when the response starts."""

    def __init__(self, app: Any, logger: logging.Logger) -> None:
        self.app, self.logger = app, logger

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = {"code": 500}

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            client = scope.get("client")
            line = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "client": client[0] if client else "unknown",
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status["code"],
                "rows": state.get("rows", 0),
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "worker": os.getpid(),
                **state.get("audit", {}),
            }
            self.logger.info(json.dumps(line, sort_keys=True))


class JsonFormatter(logging.Formatter):
    """Log records as one JSON object per line, so the service's stream is all JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, sort_keys=True)


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": JsonFormatter}},
    "handlers": {
        "json": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["json"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        __name__: {"level": "INFO"},
    },
    "root": {"handlers": ["json"], "level": "WARNING"},
}


def no_delay(transport: asyncio.Transport) -> None:
    """Send small writes at once (TCP_NODELAY). asyncio sets it only on sockets whose
    protocol number says TCP, and the listening socket uvicorn binds for more than one
    worker says 0: without this, a response's headers and body (two writes) wait on the
    client's delayed acknowledgement, about 40 ms per request."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# What GuardedHttpToolsProtocol enforces; set by guarded_protocol() in each serving process.
GUARDS: dict[str, Any] = {
    "header_timeout": float(DEFAULTS["header_timeout_seconds"]),
    "body_timeout": float(DEFAULTS["body_timeout_seconds"]),
    "max_connections": int(DEFAULTS["max_connections"]),
    "audit": logging.getLogger("audit"),
}
# Request line and headers of one request, at most (h11's limit in uvicorn): past it, 431.
MAX_HEADER_BYTES = 16384
HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the C parser llhttp) with what uvicorn lacks: a
    deadline for the request headers (serve.header_timeout_seconds), a cap on their size
    (MAX_HEADER_BYTES, 431) and a cap on open connections (serve.max_connections) that drops
    the oldest connection still waiting for its headers to admit a new one. When a response
    was sent before its request body arrived, the rest of the body must arrive within
    serve.body_timeout_seconds, or the connection is closed. A module-level class (uvicorn
    imports it by name in each worker process); GUARDS holds its settings."""

    header_timer: asyncio.TimerHandle | None = None
    drain_timer: asyncio.TimerHandle | None = None
    waiting_since = 0.0
    header_bytes = 0
    body_done = True  # the current request's body has arrived (or there is no request)

    def waiting_for_headers(self) -> bool:
        """No request under way: before the first, or after a request answered and read."""
        idle = self.cycle is None or (self.cycle.response_complete and self.body_done)
        return idle and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpToolsProtocol) and c.waiting_for_headers()
        ]
        waiting.sort(key=lambda c: c.waiting_since)
        while len(self.connections) >= GUARDS["max_connections"] and waiting:
            oldest = waiting.pop(0)
            self.connections.discard(oldest)
            oldest.cut("max_connections")
        super().connection_made(transport)
        no_delay(transport)
        self.arm()

    def arm(self) -> None:
        self.waiting_since = self.loop.time()
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(GUARDS["header_timeout"], self.headers_late)

    def disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_late(self) -> None:
        self.header_timer = None
        if self.waiting_for_headers():
            self.cut("header_timeout")

    def audit(self, rule: str, status: int) -> None:
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "client": self.client[0] if self.client else "unknown",
            "method": None,
            "path": None,
            "status": status,
            "rows": 0,
            "latency_ms": round((self.loop.time() - self.waiting_since) * 1000, 2),
            "worker": os.getpid(),
            "rule": rule,
        }
        GUARDS["audit"].info(json.dumps(line, sort_keys=True))

    def cut(self, rule: str) -> None:
        """Close a connection that has not sent a whole request; audit it."""
        self.disarm()
        self.audit(rule, 408)
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.header_timer is None and self.waiting_for_headers():
            self.arm()  # the next request on a kept-alive connection: a new deadline
        super().data_received(data)
        if not self.waiting_for_headers():
            self.header_bytes = 0
            self.disarm()
            return
        self.header_bytes += len(data)
        if self.header_bytes > MAX_HEADER_BYTES:
            self.disarm()
            self.audit("header_size", 431)
            body = json.dumps(
                {
                    "error": "headers_too_large",
                    "message": f"request line and headers over {MAX_HEADER_BYTES} bytes",
                }
            ).encode()
            self.transport.write(HEADERS_TOO_LARGE % (len(body), body))
            self.transport.close()

    def on_headers_complete(self) -> None:
        self.body_done = False
        self.header_bytes = 0
        self.disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.body_done = True
        if self.drain_timer is not None:
            # the rest of the body of a request answered early: the connection is idle
            # again, and closed after the keep-alive time as after any answer
            self.drain_timer.cancel()
            self.drain_timer = None
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.body_done and self.drain_timer is None and not self.transport.is_closing():
            # Answered before its body arrived (401, 429...): the rest of the body may
            # still come, within the body deadline; then the connection is closed.
            self.drain_timer = self.loop.call_later(GUARDS["body_timeout"], self.body_late)

    def body_late(self) -> None:
        self.drain_timer = None
        if not self.body_done and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(settings: dict[str, Any], audit: logging.Logger) -> type:
    """GuardedHttpToolsProtocol, set to enforce these settings in this process."""
    GUARDS.update(
        header_timeout=float(settings["header_timeout_seconds"]),
        body_timeout=float(settings["body_timeout_seconds"]),
        max_connections=int(settings["max_connections"]),
        audit=audit,
    )
    return GuardedHttpToolsProtocol


def settle_heap() -> None:
    """Move what start-up built (the model, the libraries) out of the garbage collector's
    reach: a full collection then walks only what requests create, not a pause of a few
    hundred milliseconds over every object of the loaded libraries."""
    gc.collect()
    gc.freeze()


def worker_app() -> Any:
    """The app of one uvicorn worker process (serve.workers > 1), from the same project,
    settings and token as the process that started it."""
    logging.captureWarnings(True)
    paths = Paths()
    params = load_params(paths)
    guarded_protocol(settings_from(params), logging.getLogger("audit"))
    app = create_app(paths, params)
    settle_heap()
    return app


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__} serve", description="serve the verified model over HTTP"
    )
    parser.add_argument("--host", help="address to bind (default serve.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default serve.port, 8000)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (put TLS in front of it)",
    )
    args = parser.parse_args(argv)
    try:
        paths = Paths()
        params = load_params(paths)
        settings = settings_from(params)
        host = args.host or str(settings["host"])
        port = args.port if args.port is not None else int(settings["port"])
        if not is_loopback(host) and not args.allow_remote:
            raise ServeConfigError(
                f"refusing to bind {host}: only loopback by default. Pass --allow-remote "
                "(and put a TLS proxy in front) to serve other machines"
            )
        logging.config.dictConfig(LOG_CONFIG)  # from here on, every line on stderr is JSON
        logging.captureWarnings(True)
        app = create_app(paths, params)
        settle_heap()
    except (ServeConfigError, FileNotFoundError) as error:
        print(f"serve: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # model refused or settings invalid: one clear line
        print(f"serve: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    import uvicorn

    workers = int(settings["workers"])
    log.info(
        "serving on http://%s:%s (POST /predict, GET /health) with %d worker(s), rate-limit "
        "store %s",
        host,
        port,
        workers,
        shown_uri(settings["rate_limit_storage"]).split("://")[0] + "://",
    )
    protocol = guarded_protocol(settings, logging.getLogger("audit"))
    uvicorn.run(
        # one worker serves the app built (and checked) above; more import it by name, each
        # building its own (model verified, token read, shared store checked) in its process
        app if workers == 1 else f"{__package__}.serve:worker_app",
        factory=workers > 1,
        workers=workers,
        host=host,
        port=port,
        http=protocol if workers == 1 else f"{__package__}.serve:{protocol.__name__}",
        log_config=LOG_CONFIG,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
        # The app applies serve.trusted_proxies itself; uvicorn's own proxy handling (which
        # trusts 127.0.0.1, or FORWARDED_ALLOW_IPS, by default) stays off.
        proxy_headers=False,
        timeout_keep_alive=int(math.ceil(settings["keep_alive_seconds"])),
        # connections past max_connections get 503 once no waiting connection can be dropped
        limit_concurrency=int(settings["max_connections"]) + 1,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
