"""What users write themselves: FastAPI + httpx, body forwarded, 90/10 random split.

Run as ``uvicorn loadtests.benchmark.naive_proxy:app`` with ``NAIVE_UPSTREAMS=url1,url2``.
"""

from __future__ import annotations

import os
import random

import httpx
from fastapi import FastAPI, Request, Response

UPSTREAMS = os.environ.get("NAIVE_UPSTREAMS", "http://127.0.0.1:9001,http://127.0.0.1:9002").split(
    ","
)
client = httpx.AsyncClient(timeout=30)
app = FastAPI()


@app.post("/v2/models/{model}/infer")
async def infer(model: str, request: Request) -> Response:
    upstream = UPSTREAMS[0] if random.random() < 0.9 else UPSTREAMS[-1]
    reply = await client.post(
        f"{upstream}/v2/models/{model}/infer",
        content=await request.body(),
        headers={"content-type": request.headers.get("content-type", "application/json")},
    )
    return Response(reply.content, reply.status_code, media_type=reply.headers.get("content-type"))
