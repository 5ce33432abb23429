"""The one table of metric names, directions and labels.

``benchmark`` (metrics, results files, the runner's summary) and ``leaderboards`` (which reads result
files only and imports nothing of ``benchmark``) both use it, so a metric's direction is defined once.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    name: str
    direction: str  # "higher" | "lower" is better
    label: str
    sync: bool = False  # computed from the video + audio alone (no ground-truth frames needed)

    @property
    def arrow(self) -> str:
        return "↑" if self.direction == "higher" else "↓"

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", "higher", "PSNR (dB)"),
        MetricInfo("psnr_masked", "higher", "PSNR head (dB)"),
        MetricInfo("ssim", "higher", "SSIM"),
        MetricInfo("ssim_masked", "higher", "SSIM head"),
        MetricInfo("lpips", "lower", "LPIPS"),
        MetricInfo("lpips_masked", "lower", "LPIPS head"),
        MetricInfo("psnr_mouth", "higher", "PSNR mouth (dB)"),
        MetricInfo("ssim_mouth", "higher", "SSIM mouth"),
        MetricInfo("lpips_mouth", "lower", "LPIPS mouth"),
        MetricInfo("lmd", "lower", "LMD mouth (px)"),
        MetricInfo("lmd_face", "lower", "LMD face (px)"),
        MetricInfo("lse_d", "lower", "LSE-D", sync=True),
        MetricInfo("lse_c", "higher", "LSE-C", sync=True),
        MetricInfo("lse_d_video", "lower", "LSE-D (mean of per-video)", sync=True),
        MetricInfo("lse_c_video", "higher", "LSE-C (mean of per-video)", sync=True),
    )
}


def metric_info(name: str) -> MetricInfo:
    """Direction and label of a metric; ``<name>_masked`` of a known metric inherits its direction;
    unknown names (a metric added later) default to 'higher' and say so in the label."""
    if name in METRICS:
        return METRICS[name]
    base = name.removesuffix("_masked")
    if base in METRICS:
        return dataclasses.replace(METRICS[base], name=name, label=f"{METRICS[base].label} head")
    return MetricInfo(name, "higher", f"{name} (direction unknown)")
