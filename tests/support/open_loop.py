"""Open-loop load: requests sent on a fixed schedule whatever the answers (as real users do),
each outcome timed. Bounded: ``rate`` x ``seconds`` requests, all to 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Outcome:
    status: int
    """HTTP status; 0 when no response came (connection reset, client timeout)."""
    seconds: float
    retry_after: str | None


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Outcome:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return Outcome(
                response.status, time.perf_counter() - started, response.headers.get("retry-after")
            )
    except (aiohttp.ClientError, TimeoutError):
        return Outcome(0, time.perf_counter() - started, None)


async def open_loop(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
    client_timeout_s: float = 30.0,
) -> list[Outcome]:
    """``rate`` requests a second for ``seconds``; every outcome, in the order sent."""
    headers = {"content-type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=1000)
    timeout = aiohttp.ClientTimeout(total=client_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: list[asyncio.Task[Outcome]] = []
        start = time.perf_counter()
        for index in range(round(rate * seconds)):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, body, headers)))
        return list(await asyncio.gather(*tasks))


def run_open_loop(
    url: str, body: bytes, rate: float, seconds: float, headers: dict[str, str] | None = None
) -> list[Outcome]:
    return asyncio.run(open_loop(url, body, rate, seconds, headers))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
