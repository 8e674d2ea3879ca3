"""The rollout controller: reads state, observes, decides, persists, then acts.

One evaluation of a model (``evaluate``): load its rollout, read the window's metrics, run the
pure ``decide``, save the result, and only then carry out the action it holds (and save how it
went). A restarted controller resumes from the files; an action interrupted half-way is still
in its rollout and is applied again. Clock, metric source and admin API are injected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.rollout import actuator, decide
from gateway.rollout.gates import evaluate as evaluate_gates
from gateway.rollout.gates import overall
from gateway.rollout.observations import Observations, Traffic, summarize
from gateway.rollout.plan import Metrics, NoisePair, Plan
from gateway.rollout.sources import MetricSource, MetricsUnavailable, source_for
from gateway.rollout.state import Rollout
from gateway.rollout.store import StateStore

log = logging.getLogger("gateway.rollout")

SourceFactory = Callable[[Metrics], MetricSource]


class Controller:
    def __init__(
        self,
        store: StateStore,
        admin: actuator.AdminApi,
        metrics: Metrics,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        sources: SourceFactory | None = None,
        sample_every_s: float = 10.0,
        watch_for_s: float = 3600.0,
    ) -> None:
        from gateway.rollout.metrics import RolloutMetrics

        self.store = store
        self.admin = admin
        self.default_metrics = metrics
        self.clock = clock
        self.metrics = RolloutMetrics(registry or CollectorRegistry())
        self._make_source = sources or (lambda m: source_for(m.prometheus, m.scrape))
        self._sources: dict[tuple[Any, ...], MetricSource] = {}
        self._lock = threading.RLock()
        self._due: dict[str, float] = {}
        self._sample_every_s = sample_every_s
        self._watch_for_s = watch_for_s
        self._watched: dict[tuple[str, Plan], float] = {}
        """(model, plan) asked for an analysis -> when: sampled for an hour since (scraping
        has no history of its own, so a window needs samples taken before it is asked for)."""
        self._sampled: dict[tuple[str, Plan], float] = {}
        for model in store.models():
            rollout = store.load(model)
            if rollout is not None:
                self.metrics.show(rollout)

    # --- metrics -------------------------------------------------------------------------------

    def source(self, plan: Plan) -> MetricSource:
        chosen = plan.metrics if (plan.metrics.prometheus or plan.metrics.scrape) else None
        metrics = chosen or self.default_metrics
        key = (metrics.prometheus, metrics.scrape)
        if key not in self._sources:
            self._sources[key] = self._make_source(metrics)
        return self._sources[key]

    def observe(
        self,
        model: str,
        plan: Plan,
        candidates: Sequence[str],
        baseline: Sequence[str],
        noise: Sequence[NoisePair],
        start: float,
        end: float,
    ) -> Observations:
        source = self.source(plan)
        samples = source.window(model, plan.gates.latency_metric, start, end)
        return summarize(samples, candidates, baseline, noise, plan.gates, source.description)

    # --- persisting and acting -----------------------------------------------------------------

    def _save(self, before: Rollout | None, after: Rollout) -> None:
        self.store.save(after)
        self.metrics.show(after)
        seen = len(before.history) if before is not None else 0
        for event in after.history[seen:]:
            log.info(
                "rollout %s: %s (step %s, %s)%s", after.model, event.event,
                after.step_name(event.step), event.phase,
                f": {event.detail}" if event.detail else "",
            )  # fmt: skip

    def _act(self, rollout: Rollout) -> Rollout:
        action = rollout.action
        assert action is not None
        result = actuator.apply(self.admin, rollout.model, action, rollout.candidates)
        self.metrics.acted(rollout.model, action.kind, result.ok)
        done = decide.after_action(rollout, result, self.clock())
        self._save(rollout, done)
        return done

    def _run(self, rollout: Rollout) -> Rollout:
        """Act while there is an action (at most twice: a failed step can turn into a rollback,
        which gets its first attempt at once)."""
        for _ in range(2):
            if rollout.action is None:
                break
            rollout = self._act(rollout)
            if rollout.action is not None and rollout.action.attempts > 0:
                break
        return rollout

    # --- what the loop and the API call --------------------------------------------------------

    def status(self, model: str) -> Rollout | None:
        return self.store.load(model)

    def rollouts(self) -> list[Rollout]:
        found = (self.store.load(model) for model in self.store.models())
        return [rollout for rollout in found if rollout is not None]

    def start(self, model: str, candidates: Sequence[str], plan: Plan) -> Rollout:
        with self._lock:
            existing = self.store.load(model)
            if existing is not None and not existing.finished:
                raise decide.RolloutRefused(
                    f"a rollout of {model} is under way ({existing.phase}, "
                    f"{existing.step_name()}): abort it first"
                )
            self.source(plan)  # ValueError now if the plan and the controller name no metrics
            variants, _ = self.admin.variants(model)
            rollout = decide.begin(model, candidates, plan, variants, self.clock())
            self._save(None, rollout)
            self._due[model] = self.clock() + plan.interval
            return self._run(rollout)

    def command(self, model: str, name: str, who: str = "operator") -> Rollout:
        commands = {
            "pause": decide.pause,
            "resume": decide.resume,
            "promote": decide.promote_now,
            "abort": decide.abort,
        }
        with self._lock:
            rollout = self.store.load(model)
            if rollout is None:
                raise LookupError(f"no rollout of {model}")
            changed = commands[name](rollout, self.clock(), who)
            self._save(rollout, changed)
            return self._run(changed)

    def evaluate(self, model: str) -> Rollout | None:
        """One evaluation of one model's rollout (the loop calls it every plan.interval)."""
        with self._lock:
            rollout = self.store.load(model)
            if rollout is None or rollout.finished:
                return rollout
            if rollout.action is None and rollout.step >= 0:
                now = self.clock()
                observed: Observations | None = None
                why = ""
                try:
                    observed = self.observe(
                        model, rollout.plan, rollout.candidates, rollout.baseline,
                        decide.noise_pairs(rollout), rollout.window_start, now,
                    )  # fmt: skip
                except MetricsUnavailable as error:
                    why = str(error)
                decided = decide.decide(rollout, observed, now, why)
                if decided != rollout:
                    self._save(rollout, decided)
                rollout = decided
            return self._run(rollout)

    def tick(self) -> None:
        """Evaluate every unfinished rollout whose interval is up; sample the models watched."""
        self._sample_watched()
        for rollout in self.rollouts():
            if rollout.finished:
                continue
            now = self.clock()
            if self._due.get(rollout.model, 0.0) <= now:
                self._due[rollout.model] = now + rollout.plan.interval
                try:
                    self.evaluate(rollout.model)
                except Exception:  # one model's trouble must not stop the others' rollouts
                    log.exception("rollout %s: evaluation failed", rollout.model)

    def _sample_watched(self) -> None:
        now = self.clock()
        for key, asked in list(self._watched.items()):
            if now - asked > self._watch_for_s:
                del self._watched[key]
                continue
            if now - self._sampled.get(key, 0.0) >= self._sample_every_s:
                self._sampled[key] = now
                model, plan = key
                try:
                    self.source(plan).record(model, now)
                except MetricsUnavailable as error:
                    log.warning("analysis of %s: %s", model, error)

    def analysis(
        self,
        model: str,
        candidates: Sequence[str] = (),
        baseline: Sequence[str] = (),
        window_s: float | None = None,
        plan: Plan | None = None,
    ) -> dict[str, Any]:
        """The gates on a window, for Flagger's webhooks and Argo's web provider: of the running
        rollout by default, else of the variants named."""
        rollout = self.store.load(model)
        now = self.clock()
        noise: Sequence[NoisePair] = ()
        reference: Traffic | None = None
        names: Sequence[str]
        if candidates:
            plan = plan or Plan()
            start = now - (window_s or 300.0)
            names = ("error_rate", "latency", "divergence")
            noise = plan.noise or ()
        elif rollout is not None and rollout.step >= 0:
            plan, candidates, baseline = rollout.plan, rollout.candidates, rollout.baseline
            start = now - window_s if window_s else rollout.window_start
            names = plan.steps[min(rollout.step, len(plan.steps) - 1)].gates
            noise = decide.noise_pairs(rollout)
            reference = Traffic.from_json(rollout.reference) if rollout.reference else None
        else:
            raise LookupError(f"no rollout of {model} under way: name the candidate and baseline")
        if not baseline:
            raise ValueError("name the baseline variants too")
        self._watched[(model, plan)] = now
        try:
            observed = self.observe(model, plan, candidates, baseline, noise, start, now)
            results = evaluate_gates(names, observed, plan.gates, reference)
            verdict, why = overall(results), ""
        except MetricsUnavailable as error:
            results, verdict, why = [], "nodata", str(error)
        return {
            "model": model,
            "verdict": verdict,
            **{name: verdict == name for name in ("pass", "fail", "nodata")},
            "candidates": list(candidates),
            "baseline": list(baseline),
            "window": {"start": start, "end": now, "seconds": round(now - start, 3)},
            "gates": [result.to_json() for result in results],
            "gate": {result.gate: result.to_json() for result in results},
            "unavailable": why,
            "rollout": None
            if rollout is None
            else {"phase": rollout.phase, "step": rollout.step, "name": rollout.step_name()},
        }
