"""Floors for the request-path bench (not product code): servers that read a POST body and answer a fixed JSON.

    python bench/peers/bare_servers.py {asgi,starlette,fastapi} --port 8600     # uvicorn, httptools, uvloop
    serve config: import_path bare_servers:serve_app                             # a bare FastAPI Serve deployment

Each answers ``POST /predict`` with the same fixed body (the size of a samo-serve answer) and ``GET /readyz``
with ``{"status": "ok"}`` (what ``samo-serve run`` polls before it says ready), and does nothing else:
what a request costs the framework alone. ``bench/request_path.py`` starts them beside samo-serve.
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = (
    b'{"emotions":[{"label":"gratitude","score":0.926567},{"label":"love","score":0.887176}],'
    b'"primary":{"label":"gratitude","score":0.926567},"model_version":"goemotions-minilm-ffa517df561e",'
    b'"cache":"l1","truncated":false,"latency_ms":0.1}'
)
READY = b'{"status":"ok"}'


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: the floor of uvicorn itself."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = ANSWER if scope["path"] == "/predict" else READY
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def starlette_app() -> Any:
    async def predict(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(READY, media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def fastapi_app() -> Any:
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(READY, media_type="application/json")

    return app


def _serve_app() -> Any:
    """A bare FastAPI app as a Serve deployment named ``Ingress`` (``samo-serve run`` serves it on its port)."""
    from ray import serve

    app = fastapi_app()

    @serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=256)
    @serve.ingress(app)
    class Ingress:
        pass

    return Ingress.bind()


def __getattr__(name: str) -> Any:  # ``serve_app`` is built when Serve imports it, never at import here
    if name == "serve_app":
        return _serve_app()
    raise AttributeError(name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["asgi", "starlette", "fastapi"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import uvicorn

    app = {"asgi": lambda: asgi_app, "starlette": starlette_app, "fastapi": fastapi_app}[args.kind]()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop")  # fmt: skip


if __name__ == "__main__":
    main()
