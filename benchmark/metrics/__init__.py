"""One metric implementation for every method: PSNR, SSIM, LPIPS, LMD, LSE-D, LSE-C.

Entry point: :func:`compute_metrics` (see ``docs/interfaces.md``, "Metrics API"). Each metric is declared
once, in its own module, with :func:`benchmark.metrics.registry.register_metric` (docs/extending.md, "Add a
metric"); each metric module's docstring gives its exact definition and the reference implementation it
equals.
"""

from benchmark.metrics.compute import all_metrics, compute_metrics, higher_is_better
from benchmark.metrics.registry import Metric, MetricResult, register_metric

__all__ = ["Metric", "MetricResult", "all_metrics", "compute_metrics", "higher_is_better", "register_metric"]
