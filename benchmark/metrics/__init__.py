"""One metric implementation for every method: PSNR, SSIM, LPIPS, LMD, LSE-D, LSE-C.

Entry point: :func:`compute_metrics` (see ``docs/interfaces.md``, "Metrics API"). Each metric module's
docstring gives its exact definition and the reference implementation it equals.
"""

from benchmark.metrics.compute import ALL_METRICS, HIGHER_IS_BETTER, MetricResult, compute_metrics

__all__ = ["ALL_METRICS", "HIGHER_IS_BETTER", "MetricResult", "compute_metrics"]
