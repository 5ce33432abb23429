"""Multi-view FLAME tracking (the ingest ``track`` stage). See solver.py for the method."""

from tracking.fit.config import TrackingConfig
from tracking.fit.solver import FitResult, Observations, fit_subject
from tracking.fit.track import track_dataset

__all__ = ["FitResult", "Observations", "TrackingConfig", "fit_subject", "track_dataset"]
