"""Multi-camera calibration from a ChArUco board (cv2.aruco, OpenCV 4.11 API) and pycolmap bundle adjustment.

1. Per camera: ChArUco corners on every calibration frame (``cv2.aruco.CharucoDetector`` + sub-pixel).
2. Pairing across cameras (:func:`assign_slots`): frames are put on a common clock (per-camera offsets
   from the calibration videos' mic tracks when they have them); where the board is held still, each
   hold becomes one view with corners averaged over its frames and holds overlapping in time share a
   board pose, which makes pairing immune to sub-frame offsets. A board in constant motion falls back
   to per-frame pairing of frames whose times agree within ``max_pair_mismatch_frames``.
3. Per camera: intrinsics ``K`` and radial distortion ``(k1, k2)`` (``p1 = p2 = k3 = 0``: with a ~20°
   field of view, decentering distortion is indistinguishable from a principal-point shift and only
   trades with it) with ``cv2.calibrateCamera`` (Zhang's method + Levenberg-Marquardt, started from the
   restricted model), and a board pose per view (planar PnP, IPPE). Views whose corners lie nearly on
   one line (:func:`corner_spread`) and outlier views (per-view RMS) are left out: their nearly
   ambiguous planar poses can turn a camera wrong while its RMS still looks plausible.
4. Extrinsics initialised from the board poses: ``cam_from_ref = cam_from_board · (ref_from_board)⁻¹``
   averaged over the views both cameras share (chained through other cameras when needed).
5. Joint refinement with pycolmap's bundle adjustment over all cameras and board poses, using COLMAP 4's
   rig model: the board is the (fixed, metric) world, each board pose is a rig *frame* whose
   ``rig_from_world`` is the board pose, and each camera is a rig *sensor* whose ``sensor_from_rig`` is
   its extrinsic relative to the reference (frontal) camera. Board points are constant, so the metric
   scale comes from the board's square size and there is no gauge freedom. Intrinsics (COLMAP's
   ``RADIAL`` model: f, cx, cy, k1, k2, with each camera's aspect ratio fy/fx held at its step-3 value
   by stretching its u coordinates) are refined jointly with the poses.
6. World frame: origin at the point closest (least squares) to all optical axes (the rig's look-at
   point, where the head sits); axes from the frontal camera turned to a y-up, head-facing-+z frame:
   ``x = x_frontal, y = -y_frontal, z = -z_frontal`` (the frontal camera looks along -z, FLAME/OpenGL
   style). Cameras stay in the OpenCV convention (``world_to_cam`` maps world to x right, y down,
   z forward).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from capture_tools.rig import BoardSpec
from gsbench.errors import StageError
from gsbench.progress import warn


@dataclass(frozen=True)
class CalibrationParams:
    max_views: int = 60  # per camera, evenly spaced among the detections, for the intrinsics
    min_corners: int = 6  # ChArUco corners for a view to count
    min_views: int = 3  # distinct board poses per camera needed for its intrinsics
    min_views_full_model: int = 10  # below: centred principal point, fx = fy, only k1; K fixed in BA
    max_pair_mismatch_frames: float = 0.05
    static_px: float = 0.3  # median corner motion between frames below which the board counts as held still
    refine_with_bundle_adjustment: bool = True
    refine_intrinsics: bool = True  # free K and distortion in the joint bundle adjustment
    max_rms_px: float = 2.0  # per-camera reprojection RMS above which the calibration has failed
    # Views whose corners lie nearly on one line (RMS distance from their best-fit line in board squares
    # below this) are dropped: see :func:`corner_spread`.
    min_corner_spread_squares: float = 0.4
    # A view whose own reprojection RMS under its camera's intrinsics exceeds both this factor times the
    # camera's median view RMS and ``min_outlier_px`` is an outlier (see :func:`calibrate_intrinsics`).
    # Gross outliers only: correct views reach 0.77 px on the synthetic rig (median 0.06 px); dropping
    # views down to 0.3 px made the default session's rotation error worse (max 0.105 -> 0.117°).
    outlier_factor: float = 5.0
    min_outlier_px: float = 1.0
    max_intrinsics_rms_px: float = 2.0  # per-camera (cv2) RMS above which a camera's views are inconsistent
    max_focal_change_percent: float = 5.0  # bundle adjustment moving a focal length further: diverged
    # Fewer than ``min_views_full_model`` views: the free model (principal point, k2) is fitted as well,
    # from the restricted one; when the two focal lengths differ by more than this, the centred principal
    # point is contradicted by the views (measured on 4 real photos: 13 % focal error at an RMS as good as
    # the reference calibration's): the free model is kept, with a warning. False: restricted only.
    max_restricted_focal_gap_percent: float = 5.0
    check_restricted_against_free: bool = True


@dataclass
class CameraCalibration:
    camera_id: str
    width: int
    height: int
    K: np.ndarray  # [3,3] raw (distorted) image
    dist: np.ndarray  # [5] k1 k2 p1 p2 k3
    world_to_cam: np.ndarray = field(default_factory=lambda: np.eye(4))  # [4,4]
    num_views: int = 0
    rms_px: float = float("nan")  # joint reprojection RMS over this camera's observations
    intrinsics_rms_px: float = float("nan")  # cv2.calibrateCamera's own RMS

    def to_dict(self) -> dict:
        return {
            "K": self.K,
            "dist": self.dist,
            "world_to_cam": self.world_to_cam,
            "width": self.width,
            "height": self.height,
            "num_views": self.num_views,
            "rms_px": self.rms_px,
            "intrinsics_rms_px": self.intrinsics_rms_px,
        }

    @classmethod
    def from_dict(cls, camera_id: str, data: dict) -> CameraCalibration:
        return cls(
            camera_id=camera_id,
            width=int(data["width"]),
            height=int(data["height"]),
            K=np.asarray(data["K"], np.float64),
            dist=np.asarray(data["dist"], np.float64),
            world_to_cam=np.asarray(data["world_to_cam"], np.float64),
            num_views=int(data["num_views"]),
            rms_px=float(data["rms_px"]),
            intrinsics_rms_px=float(data["intrinsics_rms_px"]),
        )


@dataclass(frozen=True)
class BoardView:
    slot: int  # board pose id shared by all cameras (a hold of the board, or one time instant)
    time_s: float  # on the common calibration clock
    object_points: np.ndarray  # [N,3] board frame, metres
    image_points: np.ndarray  # [N,2] pixels
    corner_ids: np.ndarray  # [N]


def make_board(spec: BoardSpec) -> cv2.aruco.CharucoBoard:
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    return cv2.aruco.CharucoBoard(
        (spec.squares_x, spec.squares_y), spec.square_length_m, spec.marker_length_m, dictionary
    )


def detect_board(
    frames: np.ndarray,
    board: cv2.aruco.CharucoBoard,
    times_s: np.ndarray,
    min_corners: int,
    saddle_sigma_px: float = 1.3,
) -> list[BoardView]:
    """ChArUco corners in each RGB frame ``[T,H,W,3]`` (``times_s[t]``: frame t on the common clock).

    Corners: OpenCV's ChArUco interpolation and ``cornerSubPix``, then :func:`refine_saddle_points`
    (``saddle_sigma_px``); corners the saddle refinement rejects are dropped. Views get ``slot = -1``;
    :func:`assign_slots` pairs them across cameras."""
    parameters = cv2.aruco.DetectorParameters()
    charuco_parameters = cv2.aruco.CharucoParameters()
    charuco_parameters.minMarkers = 2
    detector = cv2.aruco.CharucoDetector(board, charuco_parameters, parameters)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    # Small markers (a few pixels per bit) are found far more reliably on an upsampled image.
    upsample = int(np.clip(round(384 / max(frames.shape[1:3])), 1, 4)) if len(frames) else 1
    views = []
    for frame, time_s in zip(frames, times_s, strict=True):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if upsample > 1:
            gray = cv2.resize(gray, None, fx=upsample, fy=upsample, interpolation=cv2.INTER_CUBIC)
        corners, ids, marker_corners, _ = detector.detectBoard(gray)
        if ids is None or len(ids) < min_corners:
            continue
        # Refinement window ~15% of a marker side: larger windows reach the markers' edges next to
        # the chessboard corner and bias it (measured: 0.35 px RMS with 7 px windows on 11 px markers).
        quads = np.asarray(marker_corners, np.float32).reshape(-1, 4, 2)  # [M, 4, 2]
        sides = np.linalg.norm(np.roll(quads, -1, axis=1) - quads, axis=2).mean(axis=1)  # [M]
        window = max(1, int(round(0.15 * float(np.median(sides))))) if len(sides) else upsample
        corners = cv2.cornerSubPix(gray, corners.astype(np.float32), (window, window), (-1, -1), criteria)
        corners = (
            corners.astype(np.float64).reshape(-1, 2) + 0.5
        ) / upsample - 0.5  # pixel centres at integers
        corners, kept = refine_saddle_points(
            cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), corners, saddle_sigma_px
        )
        corners, ids = corners[kept], ids[kept]
        if len(ids) < min_corners:
            continue
        object_points, _ = board.matchImagePoints(corners.astype(np.float32), ids)
        image_points = corners  # matchImagePoints keeps the order; keep float64 precision
        views.append(
            BoardView(
                slot=-1,
                time_s=float(time_s),
                object_points=object_points.reshape(-1, 3).astype(np.float64),
                image_points=image_points,
                corner_ids=ids.ravel().astype(np.int64),
            )
        )
    return views


def refine_saddle_points(
    gray: np.ndarray,
    points: np.ndarray,
    sigma_px: float = 1.3,
    max_shift_px: float = 0.75,
    iterations: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Chessboard corners ``points [N,2]`` (pixel centres at integers) moved to the saddle point of the
    Gaussian-smoothed image (``sigma_px``), and a mask ``[N]`` of the corners kept.

    An X-junction is a saddle of the intensity, and its smoothed image stays point-symmetric about the
    corner under any blur, gamma or foreshortening, so the saddle is an unbiased corner estimate (the
    saddle-point refinement of e.g. Chen & Zhang 2005, "X-corner detection"). ``cornerSubPix`` is not:
    the marker edges inside its window pull it (on the synthetic rig: median error 0.11 px vs 0.044 px,
    p95 0.31 vs 0.12 px). Each iteration fits ``I = a x² + b xy + c y² + d x + e y + f`` to the 3x3
    pixels around the current estimate and jumps to the stationary point. A corner is dropped when the
    fit is not a saddle (``4ac - b² >= 0``), leaves the image, or ends more than ``max_shift_px`` from
    its start (a corner of a steeply foreshortened or half-visible square). OpenCV has no such refiner
    for ChArUco corners (``findChessboardCornersSB`` refines only plain, fully visible chessboards).
    """
    smooth = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma_px)
    height, width = smooth.shape
    dy, dx = np.mgrid[-1:2, -1:2]
    design = np.stack(
        [dx.ravel() ** 2, dx.ravel() * dy.ravel(), dy.ravel() ** 2, dx.ravel(), dy.ravel(), np.ones(9)], 1
    )
    solve = np.linalg.pinv(design.astype(np.float64))  # [6,9] least squares on the 3x3 patch
    estimate = np.asarray(points, np.float64).reshape(-1, 2).copy()
    kept = np.isfinite(estimate).all(axis=1)
    for _ in range(iterations):
        centre = np.round(np.nan_to_num(estimate)).astype(np.int64)
        kept &= (
            (centre[:, 0] >= 1)
            & (centre[:, 1] >= 1)
            & (centre[:, 0] < width - 1)
            & (centre[:, 1] < height - 1)
        )
        centre[~kept] = 1
        patch = smooth[centre[:, 1, None] + dy.ravel(), centre[:, 0, None] + dx.ravel()].astype(np.float64)
        a, b, c, d, e, _ = (patch @ solve.T).T
        det = 4 * a * c - b * b
        kept &= det < 0
        safe = np.where(det < 0, det, -1.0)
        offset = np.stack([(-2 * c * d + b * e) / safe, (b * d - 2 * a * e) / safe], axis=1)  # -H⁻¹ [d, e]
        kept &= np.abs(offset).max(axis=1) <= 1.5
        estimate = centre + offset
    kept &= np.linalg.norm(estimate - points, axis=1) <= max_shift_px
    return estimate, kept


def _static_runs(views: list[BoardView], fps: float, static_px: float) -> list[list[BoardView]]:
    """Runs of consecutive frames in which the board does not move (corners within ``static_px``)."""
    runs: list[list[BoardView]] = []
    current: list[BoardView] = []
    for view in views:
        if current:
            previous = current[-1]
            common, i_prev, i_cur = np.intersect1d(previous.corner_ids, view.corner_ids, return_indices=True)
            consecutive = abs(view.time_s - previous.time_s) < 1.5 / fps
            # median, not max: one noisy corner of a steeply tilted board must not split a hold
            moved = (
                np.median(np.linalg.norm(previous.image_points[i_prev] - view.image_points[i_cur], axis=1))
                if len(common) >= 4
                else np.inf
            )
            if consecutive and moved < static_px:
                current.append(view)
                continue
            runs.append(current)
        current = [view]
    if current:
        runs.append(current)
    return [run for run in runs if len(run) >= 3]


def _average_run(run: list[BoardView]) -> BoardView:
    """One view per hold: corners seen in at least half of the run's frames, each the median over the
    frames that saw it (in small images a corner can flicker in and out of detection during a hold;
    keeping only the corners seen in every frame can leave too few)."""
    ids, seen = np.unique(np.concatenate([view.corner_ids for view in run]), return_counts=True)
    common = ids[2 * seen >= len(run)]
    image_points, object_points = [], []
    for corner in common:
        rows = [
            (view, np.flatnonzero(view.corner_ids == corner)[0]) for view in run if corner in view.corner_ids
        ]
        image_points.append(np.median([view.image_points[row] for view, row in rows], axis=0))
        object_points.append(rows[0][0].object_points[rows[0][1]])
    return BoardView(
        slot=-1,
        time_s=float(np.mean([v.time_s for v in run])),
        object_points=np.array(object_points).reshape(-1, 3),
        image_points=np.array(image_points).reshape(-1, 2),
        corner_ids=common,
    )


def assign_slots(
    views_by_camera: dict[str, list[BoardView]],
    fps: float,
    static_px: float = 0.3,
    max_pair_mismatch_frames: float = 0.05,
    max_single_views: int = 200,
    min_corners: int = 6,
) -> tuple[dict[str, list[BoardView]], dict[str, int]]:
    """Give every view a ``slot`` (same slot = same board pose, seen by several cameras at once).

    * Holds: runs of >= 3 frames in which the board does not move (median corner motion below
      ``static_px``) become one view with per-corner medians; holds of different cameras that overlap
      in time share a slot, which is immune to sub-frame offsets between the cameras.
    * Other frames pair across cameras when their times agree within ``max_pair_mismatch_frames``
      (simultaneous or hardware-triggered cameras); the rest stay single-camera views with a slot of
      their own: they constrain that camera's intrinsics, not the extrinsics. At most
      ``max_single_views`` evenly spaced non-hold frames are kept per camera. A hold whose averaged
      view has fewer than ``min_corners`` corners is dropped.

    Returns the slotted views and counts per kind.
    """
    runs = {camera: _static_runs(views, fps, static_px) for camera, views in views_by_camera.items()}
    out: dict[str, list[BoardView]] = {camera: [] for camera in views_by_camera}
    intervals = []  # (start, end, camera, hold view)
    for camera, camera_runs in runs.items():
        for run in camera_runs:
            hold = _average_run(run)
            if len(hold.corner_ids) >= min_corners:
                intervals.append((run[0].time_s, run[-1].time_s, camera, hold))
    intervals.sort(key=lambda item: item[0])
    slot, slot_end = -1, -np.inf
    for start, end, camera, view in intervals:
        if start > slot_end:  # no overlap with the current hold: a new board pose
            slot += 1
            slot_end = end
        else:
            slot_end = max(slot_end, end)
        if not any(v.slot == slot for v in out[camera]):
            out[camera].append(dataclasses.replace(view, slot=slot))
    num_holds = slot + 1

    instants_base, single_slot = 1_000_000, 10_000_000
    paired_instants: set[int] = set()
    for camera, views in views_by_camera.items():
        in_runs = {id(v) for run in runs[camera] for v in run}
        rest = [v for v in views if id(v) not in in_runs]
        if len(rest) > max_single_views:
            rest = [rest[i] for i in np.linspace(0, len(rest) - 1, max_single_views).round().astype(int)]
        for view in rest:
            position = view.time_s * fps
            if abs(position - round(position)) <= max_pair_mismatch_frames:
                view_slot = instants_base + int(round(position))
                paired_instants.add(view_slot)
            else:
                view_slot = single_slot
                single_slot += 1
            out[camera].append(dataclasses.replace(view, slot=view_slot))
    shared = {}
    for views in out.values():
        for view in views:
            shared[view.slot] = shared.get(view.slot, 0) + 1
    counts = {
        "holds": num_holds,
        "paired_instants": sum(1 for s in paired_instants if shared[s] > 1),
        "single_camera_views": sum(1 for s, n in shared.items() if n == 1),
    }
    return out, counts


def calibrate_intrinsics(
    views: list[BoardView], width: int, height: int, params: CalibrationParams
) -> tuple[np.ndarray, np.ndarray, float, dict[int, np.ndarray], dict]:
    """``K [3,3]``, ``dist [5]``, RMS, the board pose ``cam_from_board [4,4]`` of every inlier view
    (by slot), and the model used: ``{"model": "full" | "restricted" | "free (few views)",
    "views": n, "warning": str | None, ...}``.

    Outlier views are left out of both. A view whose corners barely constrain the board pose (measured:
    6 corners, 5 of them on one board row, board tilted 50°; its corners exact to 0.15 px; such views
    are dropped earlier, see :func:`corner_spread`) has a nearly two-fold ambiguous planar pose, so the
    per-view pose that ``cv2.calibrateCamera`` starts from can be the flipped one; in the full model it
    dragged Levenberg-Marquardt to a wrong minimum (focal 66 % off, 4.7 px RMS), and the bundle
    adjustment went on from there to a camera 25° off with a plausible 0.6 px RMS. Such a view stands out
    in the restricted model (measured: 2.0 px against a median of 0.06 px): views above
    ``outlier_factor`` times the median view RMS and above ``min_outlier_px`` are dropped and the model
    refitted until none is left; a board pose that reprojects worse than that limit is not returned.
    The full model nests the restricted one, so it cannot fit the same views worse; when it does, its
    optimisation diverged and the restricted model is kept.

    With fewer than ``min_views_full_model`` views the restricted model is the default, but its centred
    principal point is an assumption: the free model is fitted from it too, and when the two focal
    lengths differ by more than ``max_restricted_focal_gap_percent`` the views contradict that
    assumption (the RMS cannot tell: the board poses absorb it), so the free model is kept and the gap
    is returned as a warning.
    """
    chosen = views
    if len(views) > params.max_views:
        chosen = [views[i] for i in np.linspace(0, len(views) - 1, params.max_views).round().astype(int)]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-8)  # bundle adjustment refines
    # The module's lens model is radial (k1, k2). First the restricted model (centred principal point,
    # fx = fy, k1 only): with a narrow field of view Zhang's closed-form start of the full model can
    # land Levenberg-Marquardt in a wrong minimum (measured: 3.5 px RMS, focal 40 % off), the
    # restricted one cannot. With few views the full model is not observable: keep the restricted one.
    restricted = (
        cv2.CALIB_FIX_K3
        | cv2.CALIB_ZERO_TANGENT_DIST
        | cv2.CALIB_FIX_PRINCIPAL_POINT
        | cv2.CALIB_FIX_ASPECT_RATIO
        | cv2.CALIB_FIX_K2
    )
    K_init = np.array([[1.0, 0.0, (width - 1) / 2], [0.0, 1.0, (height - 1) / 2], [0.0, 0.0, 1.0]])

    def fit(subset: list[BoardView], K: np.ndarray, dist: np.ndarray | None, flags: int):
        rms, K, dist, _, _, _, _, per_view = cv2.calibrateCameraExtended(
            [v.object_points.astype(np.float32) for v in subset],
            [v.image_points.astype(np.float32) for v in subset],
            (width, height),
            K.copy(),
            None if dist is None else dist.copy(),
            flags=flags,
            criteria=criteria,
        )
        return float(rms), K, dist, np.asarray(per_view, np.float64).ravel()

    def outlier_limit(per_view: np.ndarray) -> float:
        return max(params.outlier_factor * float(np.median(per_view)), params.min_outlier_px)

    while True:
        rms, K, dist, per_view = fit(chosen, K_init, None, restricted)
        limit = outlier_limit(per_view)
        inliers = [v for v, error in zip(chosen, per_view, strict=True) if error <= limit]
        if len(inliers) == len(chosen) or len(inliers) < params.min_views:
            break
        chosen = inliers
    model = {"model": "restricted", "views": len(chosen), "warning": None}
    full = cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_USE_INTRINSIC_GUESS
    if len(chosen) >= params.min_views_full_model:
        full_fit = fit(chosen, K, dist, full)
        if full_fit[0] <= rms * 1.01:  # else: diverged (see the docstring)
            rms, K, dist, per_view = full_fit
            limit = outlier_limit(per_view)
            model["model"] = "full"
    elif params.check_restricted_against_free:
        free_fit = fit(chosen, K, dist, full)
        gap = 100.0 * (K[0, 0] / free_fit[1][0, 0] - 1.0)
        model.update(restricted_focal_px=float(K[0, 0]), free_focal_px=float(free_fit[1][0, 0]))
        if free_fit[0] <= rms * 1.01 and abs(gap) > params.max_restricted_focal_gap_percent:
            model["warning"] = (
                f"only {len(chosen)} board views: the restricted model (centred principal point) puts the "
                f"focal length {gap:+.1f} % off the free model's ({K[0, 0]:.1f} vs "
                f"{free_fit[1][0, 0]:.1f} px) at RMS {rms:.3f} vs {free_fit[0]:.3f} px; kept the free model; "
                "record at least "
                f"{params.min_views_full_model} views for a trustworthy focal length"
            )
            rms, K, dist, per_view = free_fit
            limit = outlier_limit(per_view)
            model["model"] = "free (few views)"
    dist = dist.ravel()[:5].astype(np.float64)
    poses = {}
    for view in views:  # every view gets a pose (for extrinsics), not only those used for intrinsics
        pose = _board_pose(view, K, dist, limit)
        if pose is not None:
            poses[view.slot] = pose
    return K, dist, rms, poses, model


def _board_pose(view: BoardView, K: np.ndarray, dist: np.ndarray, max_rms_px: float) -> np.ndarray | None:
    """``cam_from_board [4,4]`` of a view by planar PnP (IPPE), or None when PnP fails, the board is
    behind the camera, or the pose reprojects the corners with an RMS above ``max_rms_px`` (an
    ill-conditioned or wrongly flipped pose, see :func:`calibrate_intrinsics`)."""
    ok, rvec, tvec = cv2.solvePnP(  # IPPE: the planar solver, no flipped-plane local minimum
        view.object_points, view.image_points, K, dist, flags=cv2.SOLVEPNP_IPPE
    )
    if not ok or np.size(rvec) != 3 or np.size(tvec) != 3:
        return None
    if not (np.isfinite(rvec).all() and np.isfinite(tvec).all() and float(np.ravel(tvec)[2]) > 0):
        return None
    projected = cv2.projectPoints(view.object_points, rvec, tvec, K, dist)[0].reshape(-1, 2)
    if np.sqrt(np.mean(np.sum((projected - view.image_points) ** 2, axis=1))) > max_rms_px:
        return None
    return _to_matrix(rvec, tvec)


def corner_spread(view: BoardView, square_length_m: float) -> float:
    """RMS distance (in board squares) of a view's corners from their best-fit line on the board.

    A planar pose (and the homography behind ``cv2.calibrateCamera``'s start) needs 4 corners of which
    no 3 are collinear; corners along one board row plus a single stray one (spread 0.32 to 0.37 for
    5 + 1) pin the board's tilt about that row on one corner, so the pose is nearly two-fold ambiguous.
    Two rows of 4 and 2 corners already give 0.47, a 2 x 3 block 0.5; the median view of the default
    synthetic calibration take has 1.1, and 15 of its 4546 frames (18 s take) fall below 0.4."""
    points = view.object_points[:, :2] - view.object_points[:, :2].mean(axis=0)
    singular = np.linalg.svd(points / square_length_m, compute_uv=False)
    return float(singular[-1] / np.sqrt(len(points))) if len(singular) == 2 else 0.0


def _to_matrix(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    matrix[:3, 3] = np.asarray(tvec, np.float64).ravel()
    return matrix


def _mean_pose(poses: list[np.ndarray]) -> np.ndarray:
    """Chordal L2 mean of rotations (SVD projection) and mean translation."""
    rotation_sum = sum(p[:3, :3] for p in poses)
    u, _, vt = np.linalg.svd(rotation_sum)
    rotation = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    mean = np.eye(4)
    mean[:3, :3] = rotation
    mean[:3, 3] = np.mean([p[:3, 3] for p in poses], axis=0)
    return mean


def initial_extrinsics(
    board_poses: dict[str, dict[int, np.ndarray]], reference: str
) -> dict[str, np.ndarray]:
    """``cam_from_ref [4,4]`` per camera from shared board views, chained breadth-first from ``reference``."""
    cam_from_ref = {reference: np.eye(4)}
    queue = deque([reference])
    while queue:
        known = queue.popleft()
        for camera, poses in board_poses.items():
            if camera in cam_from_ref:
                continue
            shared = sorted(set(poses) & set(board_poses[known]))
            if not shared:
                continue
            relative = [poses[s] @ np.linalg.inv(board_poses[known][s]) for s in shared]
            cam_from_ref[camera] = _mean_pose(relative) @ cam_from_ref[known]
            queue.append(camera)
    return cam_from_ref


def bundle_adjust(
    calibrations: dict[str, CameraCalibration],
    views: dict[str, list[BoardView]],
    cam_from_ref: dict[str, np.ndarray],
    board_poses: dict[str, dict[int, np.ndarray]],
    reference: str,
    board: cv2.aruco.CharucoBoard,
    refine: bool = True,
    refine_intrinsics: bool = True,
    refine_principal_point: bool = True,
    fixed_intrinsics: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """Refine ``cam_from_ref``, the board poses and (``refine_intrinsics``) every camera's K and
    distortion with pycolmap's rig bundle adjustment; returns the new ``cam_from_ref`` and updates each
    camera's ``K``, ``dist``, ``rms_px`` and ``num_views``."""
    import pycolmap

    cameras = list(calibrations)
    camera_index = {c: i + 1 for i, c in enumerate(cameras)}
    reconstruction = pycolmap.Reconstruction()
    rig = pycolmap.Rig(rig_id=1)
    cameras.sort(key=lambda c: c != reference)  # COLMAP wants the rig's reference sensor first
    # COLMAP's RADIAL model (f, cx, cy, k1, k2) has one focal length; each camera's aspect ratio
    # fy / fx stays at its per-camera estimate by stretching that camera's u coordinates by it:
    # u' = aspect · u = fy·x + aspect·cx, an exact RADIAL camera with f = fy and cx' = aspect·cx.
    aspect = {c: calibrations[c].K[1, 1] / calibrations[c].K[0, 0] for c in cameras}
    stretch = {c: np.array([aspect[c], 1.0]) for c in cameras}
    for camera in cameras:
        cal = calibrations[camera]
        k1, k2 = cal.dist[:2]
        reconstruction.add_camera(
            pycolmap.Camera(
                model="RADIAL",
                width=cal.width,
                height=cal.height,
                camera_id=camera_index[camera],
                params=[cal.K[1, 1], aspect[camera] * cal.K[0, 2], cal.K[1, 2], k1, k2],
            )
        )
        sensor = pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_index[camera])
        if camera == reference:
            rig.add_ref_sensor(sensor)
        else:
            rig.add_sensor(sensor, pycolmap.Rigid3d(cam_from_ref[camera][:3, :]))
    reconstruction.add_rig(rig)

    board_corners = np.asarray(board.getChessboardCorners(), np.float64)
    point_ids = {
        corner: reconstruction.add_point3D(board_corners[corner], pycolmap.Track())
        for corner in range(len(board_corners))
    }

    # Board pose per slot in the reference camera frame, averaged over the cameras that saw it.
    slot_poses: dict[int, list[np.ndarray]] = defaultdict(list)
    for camera in cameras:
        ref_from_cam = np.linalg.inv(cam_from_ref[camera])
        for slot, pose in board_poses[camera].items():
            slot_poses[slot].append(ref_from_cam @ pose)
    by_slot: dict[int, list[tuple[str, BoardView]]] = defaultdict(list)
    for camera in cameras:
        for view in views[camera]:
            if view.slot in board_poses[camera]:
                by_slot[view.slot].append((camera, view))

    image_id = 1
    image_owner: dict[int, str] = {}
    for frame_id, slot in enumerate(sorted(by_slot), start=1):
        frame = pycolmap.Frame(frame_id=frame_id, rig_id=1)
        frame.rig_from_world = pycolmap.Rigid3d(_mean_pose(slot_poses[slot])[:3, :])
        images = []
        for camera, view in by_slot[slot]:
            image = pycolmap.Image(
                name=f"{camera}/{slot:06d}",
                keypoints=view.image_points * stretch[camera],
                camera_id=camera_index[camera],
                image_id=image_id,
            )
            frame.add_data_id(
                pycolmap.data_t(
                    sensor_id=pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_index[camera]),
                    id=image_id,
                )
            )
            images.append((image, view))
            image_owner[image_id] = camera
            image_id += 1
        reconstruction.add_frame(frame)
        for image, view in images:
            image.frame_id = frame_id
            reconstruction.add_image(image)
            for index, corner in enumerate(view.corner_ids):
                reconstruction.add_observation(
                    point_ids[int(corner)], pycolmap.TrackElement(image.image_id, index)
                )
        reconstruction.register_frame(frame_id)

    if refine:
        options = pycolmap.BundleAdjustmentOptions()
        options.refine_points3D = False
        options.refine_focal_length = refine_intrinsics
        options.refine_principal_point = refine_intrinsics and refine_principal_point
        options.refine_extra_params = refine_intrinsics
        options.print_summary = False
        options.ceres.loss_function_type = pycolmap.LossFunctionType.SOFT_L1
        options.ceres.loss_function_scale = 1.0
        # Above 1000 images COLMAP picks an iterative Schur solver; a calibration take has more (one per
        # moving-board frame). The direct sparse Schur solver reaches the same minimum (identical figures
        # on the default session) ~6x faster here (measured: 25 s -> 4 s, 1701 images).
        options.ceres.max_num_images_direct_sparse_cpu_solver = max(
            options.ceres.max_num_images_direct_sparse_cpu_solver, len(reconstruction.images)
        )
        config = pycolmap.BundleAdjustmentConfig()
        for image_id in reconstruction.images:
            config.add_image(image_id)
        for point_id in reconstruction.points3D:
            config.add_constant_point(point_id)
        for camera in fixed_intrinsics:
            config.set_constant_cam_intrinsics(camera_index[camera])
        pycolmap.create_default_bundle_adjuster(options, config, reconstruction).solve()

    squared: dict[str, list[float]] = defaultdict(list)
    views_used: dict[str, int] = defaultdict(int)
    for iid, image in reconstruction.images.items():
        camera = image_owner[iid]
        cam = reconstruction.cameras[image.camera_id]
        pose = image.cam_from_world()
        views_used[camera] += 1
        for point in image.points2D:
            projected = cam.img_from_cam(pose * reconstruction.points3D[point.point3D_id].xyz)
            if projected is None:  # behind the camera: a view whose pose diverged; not counted
                continue
            squared[camera].extend(np.square((projected - point.xy) / stretch[camera]).tolist())
    refined = {}
    rig_out = reconstruction.rig(1)
    for camera in cameras:
        if camera == reference:
            refined[camera] = np.eye(4)
        else:
            matrix = np.eye(4)
            matrix[:3, :] = rig_out.sensor_from_rig(
                pycolmap.sensor_t(type=pycolmap.SensorType.CAMERA, id=camera_index[camera])
            ).matrix()
            refined[camera] = matrix
        focal, cx_stretched, cy, k1, k2 = reconstruction.cameras[camera_index[camera]].params
        fx, cx = focal / aspect[camera], cx_stretched / aspect[camera]
        calibrations[camera].K = np.array([[fx, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
        calibrations[camera].dist = np.array([k1, k2, 0.0, 0.0, 0.0])
        calibrations[camera].rms_px = (
            float(np.sqrt(2 * np.mean(squared[camera]))) if squared[camera] else np.nan
        )
        calibrations[camera].num_views = views_used[camera]
    return refined


def rig_world_from_ref(cam_from_ref: dict[str, np.ndarray], frontal: str) -> np.ndarray:
    """``ref_from_world [4,4]`` of the documented world frame (see module docstring)."""
    centres, directions = [], []
    for pose in cam_from_ref.values():
        ref_from_cam = np.linalg.inv(pose)
        centres.append(ref_from_cam[:3, 3])
        directions.append(ref_from_cam[:3, 2])
    # Least-squares point nearest to all optical axes: sum_i (I - d_i d_iᵀ)(x - c_i) = 0.
    lhs = sum(np.eye(3) - np.outer(d, d) for d in directions)
    rhs = sum((np.eye(3) - np.outer(d, d)) @ c for d, c in zip(directions, centres, strict=True))
    if np.linalg.cond(lhs) < 1e8:
        origin_ref = np.linalg.solve(lhs, rhs)
    else:  # all axes parallel: put the origin 1 m in front of the frontal camera
        origin_ref = np.linalg.inv(cam_from_ref[frontal])[:3, :3] @ np.array([0, 0, 1.0]) + centres[0]
    frontal_from_ref = cam_from_ref[frontal]
    flip = np.diag([1.0, -1.0, -1.0])
    ref_from_world = np.eye(4)
    ref_from_world[:3, :3] = frontal_from_ref[:3, :3].T @ flip  # world axes = flipped frontal axes
    ref_from_world[:3, 3] = origin_ref
    return ref_from_world


def intrinsics_job(job: dict) -> tuple[np.ndarray, np.ndarray, float, dict[int, np.ndarray], dict]:
    """:func:`calibrate_intrinsics` of one camera, ``job = {"views", "width", "height", "params"}``: a
    top-level function, so that a process pool can run the cameras in parallel."""
    return calibrate_intrinsics(job["views"], job["width"], job["height"], job["params"])


def _initial_calibrations(
    views_by_camera: dict[str, list[BoardView]],
    image_sizes: dict[str, tuple[int, int]],
    params: CalibrationParams,
    map_jobs: Callable[[Callable, list[dict]], Iterable],
) -> tuple[dict[str, CameraCalibration], dict[str, dict[int, np.ndarray]], dict[str, dict]]:
    """Per-camera intrinsics (step 3), board poses and intrinsics models, the cameras through ``map_jobs``."""
    jobs = [
        {"views": views, "width": image_sizes[c][0], "height": image_sizes[c][1], "params": params}
        for c, views in views_by_camera.items()
    ]
    calibrations, board_poses, models = {}, {}, {}
    for (camera, views), job, (K, dist, rms, poses, model) in zip(
        views_by_camera.items(), jobs, map_jobs(intrinsics_job, jobs), strict=True
    ):
        board_poses[camera] = poses
        models[camera] = model
        calibrations[camera] = CameraCalibration(
            camera_id=camera,
            width=job["width"],
            height=job["height"],
            K=K,
            dist=dist,
            num_views=len(views),
            intrinsics_rms_px=rms,
        )
    return calibrations, board_poses, models


def calibrate_rig(
    views_by_camera: dict[str, list[BoardView]],
    image_sizes: dict[str, tuple[int, int]],
    board_spec: BoardSpec,
    frontal: str,
    params: CalibrationParams,
    video_paths: dict[str, str],
    map_jobs: Callable[[Callable, list[dict]], Iterable] = map,
) -> tuple[dict[str, CameraCalibration], dict]:
    """ChArUco calibration of the rig from slotted board views (:func:`assign_slots`).

    ``image_sizes[camera] = (width, height)``; ``map_jobs(function, jobs)`` yields ``function(job)`` in
    job order (``map``, or a process pool's) and runs the per-camera intrinsics. Returns per-camera
    results in the world frame of the module docstring and diagnostics for the report."""
    board = make_board(board_spec)
    given = {camera: len(views) for camera, views in views_by_camera.items()}
    views_by_camera = {
        camera: [
            v
            for v in views
            if corner_spread(v, board_spec.square_length_m) >= params.min_corner_spread_squares
        ]
        for camera, views in views_by_camera.items()
    }
    for camera, views in views_by_camera.items():
        if len(views) < params.min_views:
            raise StageError(
                f"camera {camera}: too few ChArUco board views ({len(views)} distinct board poses with >= "
                f"{params.min_corners} corners not all along one line, need {params.min_views})",
                path=video_paths[camera],
                fix="record the board in view of this camera in more poses, or check the board spec "
                "in rig.yaml (calibration.board)",
            )
    # Free intrinsics can wander off when few board poses are shared (principal point and distortion
    # weakly constrained): then fall back to the restricted per-camera model (centred principal point,
    # fx = fy, k1 only) held fixed, and refine the poses only.
    models = [(params, params.refine_intrinsics)]
    if params.refine_intrinsics:
        restricted_only = dataclasses.replace(
            params, min_views_full_model=10**9, check_restricted_against_free=False
        )
        models.append((restricted_only, False))
    diverged = ""
    for model, refine_intrinsics in models:
        calibrations, board_poses, camera_models = _initial_calibrations(
            views_by_camera, image_sizes, model, map_jobs
        )
        inconsistent = max(calibrations, key=lambda c: calibrations[c].intrinsics_rms_px)
        if calibrations[inconsistent].intrinsics_rms_px > params.max_intrinsics_rms_px:
            raise StageError(
                f"camera {inconsistent}: its board views are inconsistent (per-camera calibration RMS "
                f"{calibrations[inconsistent].intrinsics_rms_px:.1f} px > {params.max_intrinsics_rms_px} px "
                "after dropping outlier views)",
                path=video_paths[inconsistent],
                fix="check the board spec in rig.yaml (calibration.board) and that the board is flat; "
                "record more board poses with most of the board in view",
            )
        cam_from_ref = initial_extrinsics(board_poses, frontal)
        missing = [c for c in views_by_camera if c not in cam_from_ref]
        if missing:
            raise StageError(
                f"camera {missing[0]}: shares no board pose with the cameras linked to {frontal}, "
                "so its pose cannot be found",
                path=video_paths[missing[0]],
                fix="move the board where this camera and a neighbour both see it",
            )
        initial = {c: p.copy() for c, p in cam_from_ref.items()}
        initial_focal = {c: float(cal.K[0, 0]) for c, cal in calibrations.items()}
        few_views = [c for c, v in views_by_camera.items() if len(v) < model.min_views_full_model]
        cam_from_ref = bundle_adjust(
            calibrations,
            views_by_camera,
            cam_from_ref,
            board_poses,
            frontal,
            board,
            refine=params.refine_with_bundle_adjustment,
            refine_intrinsics=refine_intrinsics,
            refine_principal_point=not few_views,
            fixed_intrinsics=tuple(few_views),
        )
        worst = max(calibrations, key=lambda c: calibrations[c].rms_px)
        # A bundle adjustment that moves a focal length far from its per-camera estimate started from
        # inconsistent views (wrong intrinsics, or board poses that disagree across cameras); its RMS
        # can still look plausible (measured: 0.6 px for a camera 25° off), so it counts as diverged.
        # (The restricted model's intrinsics are held fixed: its focal lengths cannot move.)
        focal_change = {c: 100.0 * (cal.K[0, 0] / initial_focal[c] - 1.0) for c, cal in calibrations.items()}
        jumped = max(calibrations, key=lambda c: abs(focal_change[c]))
        if abs(focal_change[jumped]) > params.max_focal_change_percent:
            diverged = f"{jumped}: focal length moved {focal_change[jumped]:+.1f} %"
        elif calibrations[worst].rms_px > params.max_rms_px:
            diverged = f"{worst}: {calibrations[worst].rms_px:.2f} px"
        else:
            break
    if calibrations[worst].rms_px > params.max_rms_px:
        raise StageError(
            f"camera {worst}: calibration did not converge (reprojection RMS "
            f"{calibrations[worst].rms_px:.1f} px > {params.max_rms_px} px)",
            path=video_paths[worst],
            fix="record more board poses seen by several cameras at once (tilted, at several distances)",
        )
    # The label says what happened to every camera: cameras with few views keep their per-camera
    # intrinsics fixed in the bundle adjustment, so "joint" names only the cameras refined jointly.
    if not params.refine_intrinsics:
        intrinsics_refinement = "per camera (cv2)"
    elif not refine_intrinsics:
        intrinsics_refinement = f"restricted per-camera model, fixed (joint refinement diverged: {diverged})"
    elif few_views:
        held = ", ".join(f"{c} ({camera_models[c]['model']})" for c in sorted(few_views))
        intrinsics_refinement = (
            f"joint for {len(calibrations) - len(few_views)} of {len(calibrations)} cameras; held fixed at "
            f"their per-camera model (fewer than {model.min_views_full_model} views; principal points not "
            f"refined): {held}"
        )
    else:
        intrinsics_refinement = "joint"
    warnings = [f"camera {c}: {m['warning']}" for c, m in sorted(camera_models.items()) if m.get("warning")]
    for message in warnings:
        warn(message)
    ref_from_world = rig_world_from_ref(cam_from_ref, frontal)
    for camera, cal in calibrations.items():
        cal.world_to_cam = cam_from_ref[camera] @ ref_from_world
    diagnostics = {
        "reference_camera": frontal,
        "num_board_poses": len({v.slot for views in views_by_camera.values() for v in views}),
        "near_collinear_views_dropped": {c: given[c] - len(v) for c, v in views_by_camera.items()},
        "ba_rotation_change_deg": {
            c: float(np.degrees(rotation_angle(initial[c][:3, :3].T @ cam_from_ref[c][:3, :3])))
            for c in calibrations
        },
        "ba_focal_change_percent": focal_change,
        "world_frame": "origin: least-squares intersection of the optical axes; x = x_frontal, "
        "y = -y_frontal (up), z = -z_frontal (towards the frontal camera)",
        "distortion_model": "radial k1, k2 (p1 = p2 = k3 = 0; COLMAP RADIAL model, aspect fixed per camera)",
        "intrinsics_refinement": intrinsics_refinement,
        "intrinsics_models": camera_models,
        "warnings": warnings,
    }
    return calibrations, diagnostics


def rotation_angle(rotation: np.ndarray) -> float:
    """Angle (rad) of a 3x3 rotation matrix."""
    return float(np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)))


def undistorted_size_K(K: np.ndarray, width: int, height: int, out_width: int, out_height: int) -> np.ndarray:
    """Intrinsics of the undistorted image (same K as the raw camera) resized to ``out_width x out_height``.

    Pixel centres are at integer coordinates: ``u' = (u + 0.5) · s - 0.5``.
    """
    sx, sy = out_width / width, out_height / height
    K_out = np.array(K, np.float64)
    K_out[0, 0] *= sx
    K_out[0, 1] *= sx
    K_out[1, 1] *= sy
    K_out[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K_out[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K_out
