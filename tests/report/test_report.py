"""``gateway report``: from metrics scraped over a real socket (a simulated gateway's, in the
gateway's families) to the terminal table, the HTML page and its PNG; the page rendered in a
real headless browser (Debian's chromium-headless-shell), screenshotted and looked at."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from gateway.cli import main
from gateway.report import collect, html
from gateway.report.loadtest import add_accuracy
from gateway.rollout.state import ShadowTarget, VariantState
from tests.rollout.live import serve_metrics
from tests.rollout.world import Behaviour, FakeAdmin, World
from tests.support.browser import render


def report_world() -> World:
    """v1 and v2 on both runtimes, TorchServe a little slower; v1's TF answers shadowed to
    TorchServe (the noise pair) and v2's to v3."""
    variants = {
        name: VariantState(name=name, backend=backend, version=version, weight=weight)
        for name, backend, version, weight in (
            ("tf-v1", "tfserving", "1", 40), ("torch-v1", "torchserve", "1", 40),
            ("tf-v2", "tfserving", "2", 10), ("torch-v2", "torchserve", "2", 10),
            ("torch-v3", "torchserve", "3", 0),
        )
    }  # fmt: skip
    admin = FakeAdmin(variants)
    admin.shadow = ShadowTarget(variants=("torch-v1", "torch-v3"), percent=50)
    behaviour = {
        "torch-v1": Behaviour(latency_s=0.006),
        "torch-v2": Behaviour(latency_s=0.007, error_rate=0.02),
        "torch-v3": Behaviour(divergence=0.03),
    }
    world = World(admin, behaviour, rps=100, noise_divergence=0.002)
    world.advance(60)
    return world


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    with serve_metrics(report_world()) as url:
        yield url


@pytest.fixture
def loadtest_report(tmp_path: Path) -> Path:
    """A suite's per-variant file, as loadtests.variant_stats writes it."""
    path = tmp_path / "loadtest_variants.json"
    doc = {"variants": {
        "tf-v1": {"runtime": "tfserving", "version": "1", "requests": 400, "digits": 400,
                  "correct": 389, "latency_ms": [[4.8, 400]]},
        "torch-v1": {"runtime": "torchserve", "version": "1", "requests": 400, "digits": 400,
                     "correct": 389},
        "": {"requests": 2, "digits": 0},
    }}  # fmt: skip
    path.write_text(json.dumps(doc))
    return path


def test_the_report_from_scraped_metrics(metrics_url, loadtest_report, tmp_path, capsys):
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    code = main(["report", "digits", "--scrape", metrics_url, "--loadtest-report",
                 str(loadtest_report), "--html", str(page), "--png", str(png)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    title, variants, overhead, _, pairs, *_ = out.split("\n\n")
    lines = {line.split()[0]: line.split() for line in variants.splitlines()}
    for variant in ("tf-v1", "torch-v1", "tf-v2", "torch-v2", "(tfserving)", "(torchserve)"):
        assert variant in lines, out
    # 6,000 requests in all, split 40/40/10/10; torch-v2 fails 2% of its requests.
    assert 2200 < int(lines["tf-v1"][3]) < 2600
    assert lines["tf-v1"][4] == "0.00%"
    assert 1.0 < float(lines["torch-v2"][4].rstrip("%")) < 3.5
    assert lines["tf-v1"][-1] == "0.973"  # 389/400 from the load test
    assert lines["(torchserve)"][-1] == "0.973"
    assert "since the replicas started" in title
    # TorchServe's variants are slower: their p50 (backend call) is above TF Serving's.
    assert float(lines["torch-v1"][5]) > float(lines["tf-v1"][5])
    # Shadow comparisons: the noise pair nearly always agrees, v3 less often.
    agreement = {tuple(row.split()[:2]): row.split()[3] for row in pairs.splitlines()[1:]}
    assert float(agreement["tf-v1", "torch-v1"].rstrip("%")) > 99
    assert 94 < float(agreement["tf-v1", "torch-v3"].rstrip("%")) < 99.5
    assert overhead.splitlines()[0].split()[:4] == ["runtime", "gateway", "overhead", "p50"]
    assert "µs" in overhead.splitlines()[1]
    assert page.read_text().startswith("<!doctype html>")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.width > 800


def test_the_page_renders_in_a_real_browser(tmp_path):
    world = report_world()
    lines = world.metrics_text("", 1.0).decode().splitlines()
    samples = [
        *collect.select(lines, collect.FAMILIES, 'model="digits"'),
        *collect.select(lines, (collect.OVERHEAD,)),
    ]
    report = collect.build("digits", samples, "a simulated gateway", None, world.now)
    minutes = [world.now - 3600 + 60 * i for i in range(61)]
    report.agreement_over_time = {
        "tf-v1 / torch-v1": [(t, 0.998) for t in minutes],
        "tf-v2 / torch-v3": [(t, 0.97 - 0.02 * (i > 40)) for i, t in enumerate(minutes)],
    }
    loadtest = tmp_path / "loadtest_variants.json"
    loadtest.write_text(json.dumps({"variants": {"tf-v1": {"digits": 100, "correct": 97}}}))
    add_accuracy(report, loadtest)
    page = tmp_path / "report.html"
    page.write_text(html.page(report))
    facts = render(
        page.as_uri(),
        """(() => ({
            images: [...document.images].map(i => [i.alt, i.complete, i.naturalWidth]),
            rows: document.querySelectorAll('tbody tr').length,
            title: document.querySelector('h1').textContent,
            height: document.body.scrollHeight,
        }))()""",
    )
    shot = tmp_path / "screenshot.png"
    shot.write_bytes(facts.png)
    images = facts.facts["images"]
    assert [alt for alt, _, _ in images] == [
        "latency distributions", "latency percentiles", "agreement"
    ]  # fmt: skip
    assert all(complete and width > 800 for _, complete, width in images), images
    assert facts.facts["rows"] >= 5 + 2 + 2  # variants, runtimes, pairs
    assert facts.facts["title"].startswith("digits")
    with Image.open(io.BytesIO(facts.png)) as image:
        assert image.size == (1280, 2400)
        rgb = image.convert("RGB")
        # Not blank: plenty of pixels differ from the page's background, in many colours
        # (the plots' lines and bars), across the whole height of the first screens.
        sample = rgb.resize((320, 600))
        colours = sample.getcolors(maxcolors=320 * 600) or []
        background = max(colours)[1]
        painted = sum(count for count, colour in colours if colour != background)
        assert painted > 0.15 * 320 * 600, painted
        assert len(colours) > 200
        for band in range(4):  # every quarter of the screen has something drawn in it
            box = sample.crop((0, band * 150, 320, (band + 1) * 150))
            assert len(box.getcolors(maxcolors=320 * 150) or []) > 20, band
