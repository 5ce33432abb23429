"""Multi-view FLAME tracking (the ingest ``track`` stage): :func:`track_dataset` fits every subject of a
dataset (:func:`fit_subject`, the method in solver.py, its settings in :class:`TrackingConfig`) and writes
``flame.npz`` per sequence. What each part of the fit buys on the default session: docs/measurements.md.
"""

from tracking.fit.config import TrackingConfig
from tracking.fit.solver import FitResult, Observations, fit_subject
from tracking.fit.track import track_dataset

__all__ = ["FitResult", "Observations", "TrackingConfig", "fit_subject", "track_dataset"]
