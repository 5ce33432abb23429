"""Multi-view FLAME tracking (the ingest ``track`` stage). See solver.py for the method.

What each part buys on the default synthetic session (``benchmarks/track_accuracy.py
/tmp/synth_default DATASET --stages --floor``; 2 subjects x 12 takes, 16 cameras, 256x256; vertex
error = mean over face-region vertices; "mesh-aligned" after one similarity fitted to all tracked vs.
true face vertices, which removes the calibration's misplacement of the world; the stage-1 row's
similarity is fitted per subject):

=======================================  ==============  ==============  =========  ==================
fit                                      reprojection    vertex error    jaw (deg)  shape ‖β‖
                                         (median px)     camera / mesh              (true 2.0 / 2.1)
                                                         aligned (mm)
=======================================  ==============  ==============  =========  ==================
shape prior 1e-3, stages 1+2             1.93 / 2.14     3.51 / 2.92     1.11       4.2 / 4.0
shape prior 0.1, stage 1 only            2.94 / 3.26 *   2.56 / 1.76     1.12       -
shape prior 0.1, stages 1+2 (default)    2.08 / 2.30     2.18 / 1.72     1.08       0.52 / 0.76
=======================================  ==============  ==============  =========  ==================

(* on the 68 iBUG points; the others on all embedded MediaPipe points; pairs are s01 / s02.)

MediaPipe's error bounds the reprojection figure: the detected points lie 3.07 / 3.42 px from the
true mesh's 68 landmarks projected by the true cameras, and even a free 3D point per landmark and
frame (triangulated from all cameras that detect it, true cameras) leaves a median of
1.84 / 2.15 px. A weak shape prior lets the shape absorb MediaPipe's bias (lower reprojection
error, twice the true ‖β‖, worse vertex error); expression and jaw contribute ~0.45 mm of the vertex
error, the rest is shape and the calibration's error of the world (centres off by up to 7.7 mm).
"""

from tracking.fit.config import TrackingConfig
from tracking.fit.solver import FitResult, Observations, fit_subject
from tracking.fit.track import track_dataset

__all__ = ["FitResult", "Observations", "TrackingConfig", "fit_subject", "track_dataset"]
