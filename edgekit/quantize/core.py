"""Post-training quantization of ONNX models, gated by accuracy and by speed on this device."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgekit.errors import EdgekitError
from edgekit.quantize.calibration import CalibrationData, Feeds
from edgekit.quantize.prepare import import_quantization, prepare
from edgekit.quantize.recipes import CANDIDATES, ORT_DEFAULT, Recipe
from edgekit.quantize.report import (
    AccuracyReport,
    Latency,
    Metric,
    Outputs,
    interleaved_latency,
    metric_for,
    run_all,
    tensor_agreement,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# A recipe must be measurably faster than float to be worth a different model: timing noise on a
# busy board is a few percent, and "as fast" is no reason to give up any accuracy.
MIN_SPEEDUP = 1.03


class QuantizationError(EdgekitError):
    """A recipe could not produce a working model."""


@dataclass(frozen=True)
class Candidate:
    recipe: Recipe
    path: Path
    report: AccuracyReport
    passed: bool
    reason: str = ""
    kept_float: tuple[tuple[str, float], ...] = ()
    label: str = ""


@dataclass(frozen=True)
class QuantizeResult:
    """What quantization produced: the chosen model (or the float one) and the evidence."""

    path: Path
    recipe: Recipe | None
    report: AccuracyReport | None
    candidates: tuple[Candidate, ...] = ()
    kept_float: tuple[tuple[str, float], ...] = ()
    notes: tuple[str, ...] = ()
    used_float: bool = False
    manifest_path: Path | None = None
    message: str = ""


@dataclass
class Job:
    """One float model, its calibration data, and the quantized models built from it."""

    source: Path
    data: CalibrationData
    manifest: Any = None
    threads: Sequence[int] = (1,)
    progress: Progress | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgekit-q-")))
    notes: list[str] = field(default_factory=list)
    _prepared: Path | None = None
    _reference: Outputs | None = None
    _built: int = 0
    _said_range: bool = False
    # Alternating rounds per latency measurement (the median round counts).
    latency_rounds: ClassVar[int] = 7

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)
        log.info("%s", text)

    @property
    def prepared(self) -> Path:
        if self._prepared is None:
            self._prepared, notes = self._prepare()
            self.notes.extend(notes)
        return self._prepared

    def _prepare(self) -> tuple[Path, list[str]]:
        """The float model made ready for the quantizer, and notes on what that took."""
        return prepare(self.source, self.workdir)

    def label(self, recipe: Recipe) -> str:
        """How progress lines and verdicts name ``recipe``."""
        return recipe.label

    def metric(self) -> tuple[str, Metric]:
        """The task metric: what the manifest's task implies."""
        return metric_for(self.manifest)

    def for_this_cpu(self, recipe: Recipe) -> Recipe:
        """``recipe`` with what it left open decided for the CPU the models are measured on."""
        resolved = recipe.for_this_cpu()
        if resolved.reduce_range and recipe.reduce_range is None and not self._said_range:
            self._said_range = True
            self.notes.append(
                "this CPU has no VNNI, where onnxruntime's u8 x s8 kernels can saturate: "
                "weights are quantized to 7 bits (reduce-range; --no-reduce-range turns it off)"
            )
        return resolved

    def load(self, path: Path, threads: int = 1) -> Any:
        from edgekit.model import load

        return load(path, num_threads=threads)

    @property
    def reference(self) -> Outputs:
        if self._reference is None:
            self._reference = run_all(self.load(self.source), self.data.held_out)
        return self._reference

    # -- building ------------------------------------------------------------------------------
    def build(self, recipe: Recipe) -> Path:
        q = import_quantization()
        self._built += 1
        out = self.workdir / f"candidate-{self._built}.onnx"
        types = {"u8": q.QuantType.QUInt8, "s8": q.QuantType.QInt8}
        try:
            if recipe.mode == "static":
                method = {
                    "minmax": q.CalibrationMethod.MinMax,
                    "entropy": q.CalibrationMethod.Entropy,
                    "percentile": q.CalibrationMethod.Percentile,
                }[recipe.method]
                q.quantize_static(
                    str(self.prepared),
                    str(out),
                    _Reader(self.data.calibration),
                    quant_format=q.QuantFormat.QDQ
                    if recipe.format == "qdq"
                    else q.QuantFormat.QOperator,
                    per_channel=recipe.per_channel,
                    reduce_range=recipe.reduce_range,
                    activation_type=types[recipe.activations],
                    weight_type=types[recipe.weights],
                    nodes_to_exclude=list(recipe.exclude),
                    calibrate_method=method,
                    calibration_cache_path=str(self.workdir / f"ranges-{recipe.method}.json"),
                )
            elif recipe.mode == "dynamic":
                q.quantize_dynamic(
                    str(self.prepared),
                    str(out),
                    weight_type=types[recipe.weights],
                    per_channel=recipe.per_channel,
                    nodes_to_exclude=list(recipe.exclude),
                )
            else:
                _to_fp16(self.prepared, out)
        except Exception as e:  # the quantizer raises plain Exceptions and ValueErrors
            raise QuantizationError(f"{recipe.label}: onnxruntime could not quantize: {e}") from e
        return out

    # -- measuring -----------------------------------------------------------------------------
    def evaluate(self, path: Path, with_latency: bool = True) -> AccuracyReport:
        metric_name, metric = self.metric()
        try:
            quantized = self.load(path)
            outputs = run_all(quantized, self.data.held_out)
        except EdgekitError as e:
            raise QuantizationError(f"the quantized model does not run: {e}") from e
        latency: list[Latency] = []
        if with_latency:
            for threads in self.threads:
                f_ms, q_ms = interleaved_latency(
                    self.load(self.source, threads),
                    self.load(path, threads),
                    self.data.held_out,
                    rounds=self.latency_rounds,
                )
                latency.append(Latency(threads, f_ms, q_ms))
        return AccuracyReport(
            metric_name=metric_name,
            metric=metric(self.reference, outputs, self.manifest),
            samples=len(self.data.held_out),
            tensors=tensor_agreement(self.reference, outputs),
            float_bytes=self.source.stat().st_size,
            quantized_bytes=path.stat().st_size,
            latency=tuple(latency),
        )

    # -- accuracy budget -----------------------------------------------------------------------
    def segments(self, recipe: Recipe, count: int) -> list[tuple[str, ...]]:
        """The nodes not yet kept in float, in graph order, cut into ``count`` contiguous runs."""
        import onnx

        names = [
            node.name
            for node in onnx.load(str(self.prepared)).graph.node
            if node.name and node.name not in recipe.exclude
        ]
        if not names:
            return []
        size = max(1, -(-len(names) // count))
        return [tuple(names[i : i + size]) for i in range(0, len(names), size)]

    def within_budget(
        self, recipe: Recipe, max_drop: float, rounds: int = 3, segments: int = 12
    ) -> tuple[Recipe, Path, AccuracyReport, list[tuple[str, float]]]:
        """Build ``recipe``; while it misses the budget, keep in float the run of nodes whose
        quantization costs the task metric most (each run measured by rebuilding with it in
        float), and repeat. Returns what each kept run cost."""
        path = self.build(recipe)
        report = self.evaluate(path, with_latency=False)
        kept: list[tuple[str, float]] = []
        for round_number in range(rounds):
            if report.drop <= max_drop or recipe.mode != "static":
                break
            trials = []
            runs = self.segments(recipe, segments)
            for index, run in enumerate(runs, 1):
                trial = recipe.with_exclusions(run)
                trial_path = self.build(trial)
                trial_report = self.evaluate(trial_path, with_latency=False)
                trials.append((trial_report.metric - report.metric, run, trial, trial_path))
                self.say(
                    f"  budget round {round_number + 1}: nodes {run[0]}..{run[-1]} in float -> "
                    f"{trial_report.metric_name} {trial_report.metric:.4f} ({index}/{len(runs)})"
                )
            if not trials:
                break
            gain, run, trial, trial_path = max(trials, key=lambda t: t[0])
            if gain <= 0:
                self.say("  no run of nodes helps: the error is spread over the whole graph")
                break
            kept.append((f"{run[0]}..{run[-1]} ({len(run)} nodes)", gain))
            recipe, path = trial, trial_path
            report = self.evaluate(path, with_latency=False)
            self.say(
                f"  kept {len(run)} nodes in float ({run[0]}..{run[-1]}): "
                f"{report.metric_name} +{gain:.4f} -> {report.metric:.4f}"
            )
        return recipe, path, self.evaluate(path), kept


class _Reader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._feeds = list(feeds)
        self._iter: Iterator[Feeds] = iter(self._feeds)

    def get_next(self) -> Feeds | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)


def _to_fp16(source: Path, out: Path) -> None:
    import onnx

    try:
        from onnxruntime.transformers import float16
    except ImportError as e:
        raise QuantizationError(f"fp16 conversion needs onnxruntime.transformers: {e}") from e
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(out))


def _passes(report: AccuracyReport, max_drop: float) -> tuple[bool, str]:
    if report.drop > max_drop:
        return False, f"{report.metric_name} {report.metric:.4f} misses the budget ({max_drop})"
    if report.speedup < MIN_SPEEDUP:
        what = "slower than" if report.speedup < 1.0 else "not measurably faster than"
        return False, f"{what} float ({report.speedup:.2f}x)"
    return True, ""


def _repair(
    job: Job,
    candidates: list[Candidate],
    budget: float,
    count: int,
    rounds: int,
    segments: int,
) -> list[Candidate]:
    """Run the budget loop on the fastest static recipes that beat float but missed the budget."""
    fixable = sorted(
        (
            c
            for c in candidates
            if not c.passed and c.recipe.mode == "static" and c.report.speedup >= MIN_SPEEDUP
        ),
        key=lambda c: -c.report.speedup,
    )[:count]
    repaired = []
    for candidate in fixable:
        job.say(f"[budget] {job.label(candidate.recipe)}: keeping the costliest nodes in float")
        try:
            final, path, report, kept = job.within_budget(
                candidate.recipe, budget, rounds, segments
            )
        except QuantizationError as e:
            job.say(f"  failed: {e}")
            continue
        ok, reason = _passes(report, budget)
        repaired.append(Candidate(final, path, report, ok, reason, tuple(kept), job.label(final)))
        job.say(
            f"  {report.metric_name} {report.metric:.4f}, {report.speedup:.2f}x vs float"
            + (f" -> rejected: {reason}" if not ok else "")
        )
    return repaired


def _verdict(best: Candidate, search: bool, budget: float | None, label: str) -> str:
    text = f"chose {label}" if search else f"built {label}"
    problems = []
    if best.report.speedup and best.report.speedup < 1.0:
        problems.append(f"it is SLOWER than the float model ({best.report.speedup:.2f}x)")
    if best.report.drop > (budget if budget is not None else 0.01):
        problems.append(
            f"its {best.report.metric_name} is only {best.report.metric:.4f} against the float "
            "model"
        )
    if problems:
        text += "; WARNING: " + " and ".join(problems) + " (try --search, or --max-drop)"
    return text


def quantize_model(
    source: Path,
    data: CalibrationData,
    *,
    manifest: Any = None,
    recipe: Recipe | None = None,
    search: bool = False,
    max_drop: float | None = None,
    threads: Sequence[int] = (1,),
    progress: Progress | None = None,
    keep_workdir: bool = False,
    budget_rounds: int = 3,
    budget_segments: int = 12,
    repair: int = 2,
    job_type: type[Job] = Job,
    search_recipes: Sequence[Recipe] = CANDIDATES,
) -> tuple[QuantizeResult, Job]:
    """Quantize ``source``; with ``search``, try every candidate recipe and keep the fastest that
    passes the budget and beats the float model, or keep the float model and say so."""
    job = job_type(source, data, manifest=manifest, threads=threads, progress=progress)
    recipes = [
        job.for_this_cpu(r) for r in (list(search_recipes) if search else [recipe or Recipe()])
    ]
    budget = 0.01 if max_drop is None and search else max_drop
    candidates: list[Candidate] = []
    try:
        for index, candidate in enumerate(recipes, 1):
            job.say(f"[{index}/{len(recipes)}] {job.label(candidate)}")
            try:
                if budget is not None and not search:
                    final, path, report, kept = job.within_budget(
                        candidate, budget, budget_rounds, budget_segments
                    )
                else:
                    final, path, kept = candidate, job.build(candidate), []
                    report = job.evaluate(path)
            except QuantizationError as e:
                job.say(f"  failed: {e}")
                continue
            ok, reason = _passes(report, budget) if budget is not None else (True, "")
            candidates.append(
                Candidate(final, path, report, ok, reason, tuple(kept), job.label(final))
            )
            job.say(
                f"  {report.metric_name} {report.metric:.4f}, {report.speedup:.2f}x vs float"
                + (f" -> rejected: {reason}" if not ok else "")
            )
    finally:
        if not keep_workdir and not candidates:
            shutil.rmtree(job.workdir, ignore_errors=True)
    if search and budget is not None:
        candidates.extend(_repair(job, candidates, budget, repair, budget_rounds, budget_segments))
    passing = [c for c in candidates if c.passed]
    if not passing:
        message = (
            "no recipe passed"
            + (f" the {budget} budget and beat the float model" if budget is not None else "")
            + ": keeping the float model"
        )
        return (
            QuantizeResult(
                path=source,
                recipe=None,
                report=None,
                candidates=tuple(candidates),
                notes=tuple(job.notes),
                used_float=True,
                message=message,
            ),
            job,
        )
    best = max(passing, key=lambda c: c.report.speedup)
    return (
        QuantizeResult(
            path=best.path,
            recipe=best.recipe,
            report=best.report,
            candidates=tuple(candidates),
            kept_float=best.kept_float,
            notes=tuple(job.notes),
            message=_verdict(best, search, budget, job.label(best.recipe)),
        ),
        job,
    )


__all__ = [
    "ORT_DEFAULT",
    "Candidate",
    "Job",
    "QuantizationError",
    "QuantizeResult",
    "quantize_model",
]
