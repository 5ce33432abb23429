"""Public entry points of multi-view FLAME tracking (implemented in :mod:`tracking.fit`)."""

from tracking.fit import FitResult, Observations, TrackingConfig, fit_subject, track_dataset

__all__ = ["FitResult", "Observations", "TrackingConfig", "fit_subject", "track_dataset"]
