"""The shadow pool: at most max_concurrent run, at most max_queued wait, the rest is refused."""

import asyncio

from gateway.shadow.pool import ShadowPool


def test_bounded_running_and_queued_then_refused_and_drained():
    async def scenario():
        pool = ShadowPool(max_concurrent=2, max_queued=3)
        release, finished = asyncio.Event(), asyncio.Event()
        done = []

        def job(n):
            async def run():
                await release.wait()
                done.append(n)
                if len(done) == 5:
                    finished.set()

            return run

        accepted = [pool.submit(job(n)) for n in range(7)]
        assert accepted == [True] * 5 + [False] * 2
        await asyncio.sleep(0)
        assert (pool.running, pool.queued) == (2, 3)
        release.set()
        await asyncio.wait_for(finished.wait(), 5)
        await asyncio.sleep(0)
        assert (pool.running, pool.queued) == (0, 0)
        assert sorted(done) == [0, 1, 2, 3, 4]
        assert pool.submit(job(9))
        await pool.close()

    asyncio.run(scenario())


def test_close_cancels_running_and_forgets_queued():
    async def scenario():
        pool = ShadowPool(max_concurrent=1, max_queued=5)
        started = []

        def job(n):
            async def run():
                started.append(n)
                await asyncio.sleep(3600)

            return run

        for n in range(3):
            pool.submit(job(n))
        await asyncio.sleep(0)
        await pool.close()
        assert started == [0]
        assert (pool.running, pool.queued) == (0, 0)

    asyncio.run(scenario())


def test_a_smaller_queue_after_resize_drops_the_newest():
    async def scenario():
        pool = ShadowPool(max_concurrent=1, max_queued=4)
        gate = asyncio.Event()

        def job():
            async def run():
                await gate.wait()

            return run

        for _ in range(5):
            assert pool.submit(job())
        pool.resize(max_concurrent=1, max_queued=1)
        assert pool.queued == 1
        gate.set()
        await pool.close()

    asyncio.run(scenario())
