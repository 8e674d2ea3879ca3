"""``gateway report MODEL``: per runtime and variant, from live metrics, what was served, how fast,
how often the runtimes agreed, and how accurate each variant was on labelled load-test traffic;
as a terminal table (``text``) and an HTML page with plots (``html``, ``plots``: matplotlib, the
``report`` extra, imported only here)."""
