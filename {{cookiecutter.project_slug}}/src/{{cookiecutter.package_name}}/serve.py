"""A small guarded HTTP service for the model (Starlette app, served by uvicorn).

    MODEL_API_TOKEN=... make serve        # 127.0.0.1:8000 unless HOST / PORT are set

POST /predict with `Authorization: Bearer <token>` and a JSON body {"rows": [{...}, ...]}.
Every request passes, in order: a per-client rate limit (429 + Retry-After), the bearer
token compared in constant time (401), a body size limit (413), JSON and schema checks
(422 naming the field and the rule), then the verified model answers with labels and
coarse confidences. One JSON audit line per request goes to the `audit` logger (stderr,
or the file serve.audit_log when set): time, client, method, path, status, rows, latency, and for
refusals the rule and field. Input values are never logged.
GET /health answers {"status": "ok"} without a token (for load balancers); it is
rate-limited too.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import math
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .config import Paths, load_params
from .inference import InputError, Predictor

# The name of the environment variable that holds the token (not a token itself).
TOKEN_ENV = "MODEL_API_TOKEN"  # noqa: S105  # nosec B105
DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8000,
    "token_env": TOKEN_ENV,
    "rate_limit": "60/minute",
    "max_body_bytes": 262144,
    "audit_log": "",
}
MIN_TOKEN_LENGTH = 16


class ServeConfigError(RuntimeError):
    """The service cannot start safely (no token, bad limit, ...). The message says how to fix."""


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
    return settings


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
    predictor = predictor or Predictor(paths, params)
    limit = parse(str(settings["rate_limit"]))
    limiter = MovingWindowRateLimiter(MemoryStorage())
    max_body = int(settings["max_body_bytes"])
    audit_path = str(settings["audit_log"] or "")
    audit = audit_logger(str(paths.root / audit_path) if audit_path else "")

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def rate_limited(request: Request) -> JSONResponse | None:
        key = client_of(request)
        if limiter.hit(limit, "api", key):
            return None
        reset, _ = limiter.get_window_stats(limit, "api", key)
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
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_body):
            return None
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body:
                return None
        return bytes(body)

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
        body = await read_body(request)
        if body is None:
            request.state.audit = {"rule": "body_size"}
            return JSONResponse(
                {
                    "error": "too_large",
                    "message": f"request body over {max_body} bytes (serve.max_body_bytes)",
                },
                status_code=413,
            )
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            request.state.audit = {"rule": "json"}
            return JSONResponse(
                {
                    "error": "invalid_input",
                    "field": "body",
                    "rule": "json",
                    "message": 'the body is not valid JSON: send {"rows": [{...}, ...]}',
                },
                status_code=422,
            )
        rows = payload.get("rows") if isinstance(payload, dict) else None
        try:
            if rows is None:
                raise InputError(
                    "rows",
                    "missing_field",
                    'is required: send {"rows": [{feature: number, ...}, ...]}',
                )
            answers = predictor.predict(rows)
        except InputError as error:
            known = error.field in {f.name for f in predictor.schema} or error.field == "rows"
            request.state.audit = {"rule": error.rule, "field": error.field if known else "?"}
            return JSONResponse(
                {
                    "error": "invalid_input",
                    "field": error.field,
                    "rule": error.rule,
                    "row": error.row,
                    "message": str(error),
                },
                status_code=422,
            )
        request.state.rows = len(answers)
        return JSONResponse({"predictions": answers})

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ]
    )
    return AuditMiddleware(app, audit)  # type: ignore[return-value]


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
                **state.get("audit", {}),
            }
            self.logger.info(json.dumps(line, sort_keys=True))


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
        app = create_app(paths, params)
    except (ServeConfigError, FileNotFoundError) as error:
        print(f"serve: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # model refused or settings invalid: one clear line
        print(f"serve: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"serving on http://{host}:{port} (POST /predict, GET /health)", file=sys.stderr)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        date_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
