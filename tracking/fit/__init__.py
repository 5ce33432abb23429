"""Multi-view FLAME tracking (the ingest ``track`` stage). See solver.py for the method.

What each part buys on the default synthetic session (12 s calibration take; ``benchmarks/
track_accuracy.py SESSION DATASET --stages --floor``; 2 subjects x 12 takes, 16 cameras, 256x256;
pairs are s01 / s02). "residual": the fit residual, median distance of the visible MediaPipe points
to MediaPipe's detections; "GT 68": the tracked mesh's 68 iBUG landmarks through the calibrated
cameras vs. the true mesh's through the true cameras (median px); vertex error: mean over face-region
vertices, camera-aligned / mesh-aligned (one similarity fitted to all tracked vs. true face vertices,
which removes the calibration's misplacement of the world):

==============================================  ===========  ===========  ============  =========
fit                                             residual     GT 68        vertex (mm)   jaw (deg)
                                                (px)         (px)         cam / mesh
==============================================  ===========  ===========  ============  =========
per-subject embedding (mediapipe_embedding      2.08 / 2.33  0.93 / 0.95  1.83 / 1.69   1.10
  "subject"), stages 1+2
fixed embedding, stage 1 only                   2.00 / 2.23  0.74 / 0.78  1.74 / -      0.70
fixed, stage 1 on the model's own iBUG 68       2.04 / 2.26  0.84 / 0.81  1.74 / 1.51   1.04
  (landmarks68_from_embedding=false), 1+2
**fixed embedding, stages 1+2 (default)**       1.99 / 2.22  0.73 / 0.77  1.62 / 1.40   0.71
  + jaw refitted on the 478 points (dense_jaw)  1.99 / 2.21  0.76 / 0.82  1.68 / 1.45   0.81
  + per-point noise weights                     1.98 / 2.23  0.73 / 0.74  1.64 / 1.41   0.70
==============================================  ===========  ===========  ============  =========

(The stage-1 residual is over the 68 points, the others over all embedded points: 362 / 382 of
478 per subject, all 478 with the fixed embedding.) The fixed embedding is
tracking/head/gsbench_head_mediapipe_embedding.json, built by scripts/build_mediapipe_embedding.py
from our own renders of gsbench-head (other subjects, motions and rig draws than any session's).

MediaPipe's error bounds the residual: even a free 3D point per MediaPipe point and frame
(triangulated from all cameras that detect it, true cameras) leaves a median of 1.83 / 2.15 px, and
the detections lie 3.06 / 3.42 px from the true mesh's 68 iBUG landmarks, so a residual below
1.5 px against the detections is out of reach for any model with one 3D point per landmark; the
GT-68 figure is the accuracy. Earlier (8 s calibration): a weak shape prior (1e-3) let the shape
absorb MediaPipe's bias (lower residual, twice the true ‖β‖, vertex error 3.5 mm); 0.1 is used.
"""

from tracking.fit.config import TrackingConfig
from tracking.fit.solver import FitResult, Observations, fit_subject
from tracking.fit.track import track_dataset

__all__ = ["FitResult", "Observations", "TrackingConfig", "fit_subject", "track_dataset"]
