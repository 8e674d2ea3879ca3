"""``make bench``: the gateway against Envoy, nginx, a naive FastAPI+httpx proxy and no proxy.

Everything runs on 127.0.0.1 on this machine, in interleaved rounds; the report quotes medians
and ratios measured in one run, never absolute numbers from elsewhere.
"""
