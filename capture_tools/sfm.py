"""Structure-from-motion calibration fallback (pycolmap) for sessions without a calibration take.

Input: the same few synchronized instants in every camera (:class:`InstantChoice`; the calibrate stage
picks them with :mod:`capture_tools.instants` and decodes them). Each instant is reconstructed on its own
(SIFT on the CPU, exhaustive matching, incremental mapping with one fixed pinhole focal length for all
cameras: the candidate of :attr:`SfmParams.focal_factors` that registers most cameras, refined to the
median of the per-camera focal lengths a bundle adjustment finds). The instants' reconstructions are
brought onto the one that registered most cameras by the similarity that best maps their camera centres
(:func:`pycolmap.estimate_sim3d`, without centres that miss badly), and each camera's pose is the mean
over the instants that registered it, leaving out those more than ``max_pose_deviation_deg`` from its
medoid pose. These poses initialise one joint bundle adjustment of all instants in COLMAP's rig model
(:func:`_rig_adjustment`): one pose and one set of intrinsics per camera (:attr:`SfmParams.camera_model`,
SIMPLE_RADIAL: focal length and k1; principal point fixed at the image centre), 3D points per instant.

Known intrinsics (rig.yaml ``intrinsics``, :class:`capture_tools.rig.IntrinsicsSpec`): each camera keeps
that file's K and distortion (COLMAP FULL_OPENCV, OpenCV's 5-term model exactly) and only the poses are
estimated; the file's extrinsics are ignored. Scale: ``baseline`` in rig.yaml (the measured distance
between two camera centres); the world frame is the ChArUco path's
(:func:`capture_tools.calibrate.rig_world_from_ref`).

Why each choice, and the accuracy it reaches: docs/measurements.md (figures: ``benchmarks/sfm.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path

import cv2
import numpy as np

from capture_tools.calibrate import CameraCalibration, _mean_pose, rig_world_from_ref
from capture_tools.rig import BaselineSpec, IntrinsicsSpec
from gsbench.errors import ConfigError, StageError


@dataclasses.dataclass(frozen=True)
class SfmParams:
    focal_factors: tuple[float, ...] = (1.5, 2.0, 2.75, 3.5)  # focal candidates, x max(width, height)
    peak_threshold: float = 0.002  # SIFT; COLMAP's 0.0067 finds ~200 features on a 256 px view
    init_min_num_inliers: int = 30  # COLMAP: 100, more than a pair of these views shares
    abs_pose_min_num_inliers: int = 12  # COLMAP: 30
    init_min_tri_angle_deg: float = 8.0  # COLMAP: 16; neighbouring cameras are ~20 deg apart
    max_runtime_s: int = 120  # per mapping run: a hopeless focal candidate must not stall ingest
    max_pose_deviation_deg: float = 1.0  # a camera's pose at one instant vs its medoid over instants
    camera_model: str = "SIMPLE_RADIAL"  # of the joint rig adjustment: f, k1 (docs/measurements.md)
    triangulation_max_error_px: float = 8.0  # a track re-triangulated from the averaged poses is kept within
    max_error_px: float = 2.0  # observations further off after the adjustment are dropped (~6x its RMS)
    seed: int = 0

    def __post_init__(self):
        if self.camera_model not in ("SIMPLE_RADIAL", "RADIAL"):
            raise ValueError(f"camera_model {self.camera_model!r}: SIMPLE_RADIAL or RADIAL")


@dataclasses.dataclass(frozen=True)
class InstantChoice:
    """Which synchronized instants the fallback reconstructs (:func:`candidate_instants`,
    :func:`select_still_instants`)."""

    count: int = 16
    # "still": the stillest instants of all takes by image change; "first_take": evenly spaced over the
    # first take, each camera at its nearest frame; "auto": "still" with known intrinsics, "first_take"
    # from scratch, where the per-camera focal lengths swing with the instant set (docs/measurements.md)
    mode: str = "auto"
    per_take: int = 2  # at most this many from one take while other takes have candidates left
    min_gap_frames: int = 3  # instants of one take at least this far apart (different head poses)
    motion_width: int = 64  # px: the stillness pass decodes at full size but compares frames this wide

    def resolved(self, known_intrinsics: bool) -> str:
        """``mode`` with "auto" resolved."""
        if self.mode != "auto":
            return self.mode
        return "still" if known_intrinsics else "first_take"

    def __post_init__(self):
        if self.mode not in ("auto", "still", "first_take"):
            raise ValueError(f"mode {self.mode!r}: 'auto', 'still' or 'first_take'")
        if self.count < 1 or self.per_take < 1 or self.min_gap_frames < 1 or self.motion_width < 8:
            raise ValueError("count, per_take, min_gap_frames >= 1 and motion_width >= 8")


def frame_motion(grey: np.ndarray) -> np.ndarray:
    """Image change around each frame of one camera, in grey levels per frame interval: ``grey [T, h, w]``
    -> ``[T]``, mean |I[k+1] - I[k-1]| / 2 (one-sided at the ends; zeros for a single frame).

    Why this measure: where the head moves by ``v`` px per frame, |ΔI| ≈ |∇I · v| over its pixels, so the
    mean grows with how far the head moves in the image (saturating for fast motion, which ranks last
    anyway), while the static studio adds only codec noise, about equal at every frame. It needs no
    segmentation or landmarks (which come later in ingest), and frames ~64 px wide keep it cheap."""
    grey = np.asarray(grey, np.float32)
    motion = np.zeros(len(grey))
    if len(grey) < 2:
        return motion
    step = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))  # [T-1]
    motion[0], motion[-1] = step[0], step[-1]
    motion[1:-1] = np.abs(grey[2:] - grey[:-2]).mean(axis=(1, 2)) / 2
    return motion


def candidate_instants(
    offsets_s: np.ndarray, num_frames: np.ndarray, fps: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Instants of one take at which every camera has a frame. ``offsets_s [C]``: master time of each
    camera's frame 0 (the sync stage); ``num_frames [C]``. Returns the instants' master times ``[M]``, one
    frame apart, each camera's nearest frame ``[M, C]``, and the spread of those frames' times (frames).

    Free-running cameras sample at sub-frame phases, so the frames nearest to one instant span up to
    almost a frame, and a moving head is then in different places in different views. The instants are
    placed where that span is shortest: at the centre of the shortest arc (of the one-frame circle) that
    holds every camera's phase, i.e. the circle less its widest gap between phases."""
    offsets_frames = np.asarray(offsets_s, float) * fps
    num_frames = np.asarray(num_frames)
    phases = np.sort(np.mod(offsets_frames, 1.0))
    gaps = np.diff(np.append(phases, phases[0] + 1.0))
    widest = int(np.argmax(gaps))
    spread = 1.0 - float(gaps[widest])
    centre = phases[(widest + 1) % len(phases)] + spread / 2  # frames, modulo 1
    first = np.ceil(offsets_frames.max() - centre) - 1
    last = np.floor((offsets_frames + num_frames - 1).min() - centre) + 1
    times_frames = centre + np.arange(first, last + 1)
    index = np.round(times_frames[:, None] - offsets_frames[None, :]).astype(int)  # [M, C]
    inside = np.all((index >= 0) & (index < num_frames[None, :]), axis=1)
    return times_frames[inside] / fps, index[inside], spread


def select_still_instants(scores: dict[str, np.ndarray], choice: InstantChoice) -> list[tuple[str, int]]:
    """The ``choice.count`` candidates of lowest score, as ``(take, candidate index)`` in take then time
    order. ``scores[take] [M]``: one per candidate instant of the take (:func:`candidate_instants`, one
    frame apart). At most ``choice.per_take`` come from one take (raised by as much again while fewer than
    ``count`` are found, e.g. in a session of one short take), and those of one take are at least
    ``choice.min_gap_frames`` apart: different head poses and expressions give the joint adjustment
    different features, where neighbouring frames would repeat one."""
    takes = list(scores)
    ranked = sorted(
        (float(score), rank, index)
        for rank, take in enumerate(takes)
        for index, score in enumerate(np.asarray(scores[take], float))
    )
    chosen: dict[str, list[int]] = {take: [] for take in takes}
    total, limit = 0, choice.per_take
    longest = max((len(scores[take]) for take in takes), default=0)
    while total < choice.count:
        for _, rank, index in ranked:
            picked = chosen[takes[rank]]
            if total == choice.count or len(picked) >= limit:
                continue
            if all(abs(index - other) >= choice.min_gap_frames for other in picked):
                picked.append(index)
                total += 1
        if limit >= longest:
            break
        limit += choice.per_take
    return [(take, index) for take in takes for index in sorted(chosen[take])]


def _mapper_options(params: SfmParams, known_intrinsics: bool = False):
    import pycolmap

    options = pycolmap.IncrementalPipelineOptions()
    options.random_seed = params.seed
    options.num_threads = 1  # with the seed, the same bytes every run (threads reorder RANSAC and BA)
    options.mapper.num_threads = 1
    options.mapper.random_seed = params.seed
    options.triangulation.random_seed = params.seed
    options.multiple_models = False
    options.max_runtime_seconds = params.max_runtime_s
    options.ba_refine_focal_length = False
    options.ba_refine_extra_params = False
    options.mapper.abs_pose_refine_focal_length = False
    options.mapper.abs_pose_refine_extra_params = False
    options.mapper.init_min_num_inliers = params.init_min_num_inliers
    options.mapper.abs_pose_min_num_inliers = params.abs_pose_min_num_inliers
    options.mapper.init_min_tri_angle = params.init_min_tri_angle_deg
    if known_intrinsics:
        # COLMAP drops images whose distortion terms exceed 1 as diverged ("bogus"): given terms are not
        # estimates, and real lenses can have |k2|, |k3| > 1
        options.mapper.max_extra_param = np.inf
    return options


def known_camera(K: np.ndarray, dist: np.ndarray, width: int, height: int):
    """COLMAP camera equal to OpenCV's ``K [3,3]``, ``dist [5]`` (k1 k2 p1 p2 k3): FULL_OPENCV with
    k4..k6 = 0 is OpenCV's rational model reduced to the 5-term one, the same projection exactly."""
    import pycolmap

    K, dist = np.asarray(K, np.float64), np.asarray(dist, np.float64)
    camera_params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2], *dist, 0.0, 0.0, 0.0]
    return pycolmap.Camera(model="FULL_OPENCV", width=width, height=height, params=camera_params)


class _Instant:
    """Features and matches of the cameras' views at one instant (one COLMAP database)."""

    def __init__(self, work: Path, views: dict[str, np.ndarray], params: SfmParams):
        import pycolmap

        self.work, self.params = work, params
        self.image_root = work / "images"
        self.image_root.mkdir(parents=True)
        for camera, view in views.items():
            cv2.imwrite(str(self.image_root / f"{camera}.png"), cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        self.database = work / "database.db"
        height, width = next(iter(views.values())).shape[:2]
        self.size = (width, height)
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_PINHOLE"
        reader.camera_params = f"{max(width, height)},{width / 2},{height / 2}"  # replaced by map()
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.sift.peak_threshold = params.peak_threshold
        extraction.num_threads = 1
        pycolmap.extract_features(
            self.database,
            self.image_root,
            camera_mode=pycolmap.CameraMode.PER_IMAGE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
        )
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = 1
        verification = pycolmap.TwoViewGeometryOptions()
        verification.ransac.random_seed = params.seed
        pycolmap.match_exhaustive(
            self.database,
            matching_options=matching,
            verification_options=verification,
            device=pycolmap.Device.cpu,
        )
        self.runs = 0

    def map(self, focal_px: float | None = None, known: dict | None = None):
        """Largest reconstruction with the intrinsics held fixed, then a global bundle adjustment (Cauchy
        loss); None when nothing registers. Either every camera at the pinhole ``focal_px`` (principal
        point at the image centre), the adjustment refining per-camera focal lengths, or ``known``:
        per camera name its own pycolmap camera (:func:`known_camera`), refined by nothing."""
        import pycolmap

        width, height = self.size
        database = pycolmap.Database.open(self.database)
        try:
            name_of = {image.camera_id: Path(image.name).stem for image in database.read_all_images()}
            for camera in database.read_all_cameras():
                if known is None:
                    camera.params = [focal_px, width / 2, height / 2]
                else:
                    camera.model = known[name_of[camera.camera_id]].model
                    camera.params = known[name_of[camera.camera_id]].params
                database.update_camera(camera)
        finally:
            database.close()
        self.runs += 1
        out = self.work / f"sparse{self.runs}"
        out.mkdir()
        reconstructions = pycolmap.incremental_mapping(
            self.database, self.image_root, out, _mapper_options(self.params, known is not None)
        )
        if not reconstructions:
            return None
        reconstruction = max(reconstructions.values(), key=lambda r: r.num_reg_images())
        adjustment = pycolmap.BundleAdjustmentOptions()
        adjustment.print_summary = False
        adjustment.refine_focal_length = known is None
        adjustment.refine_principal_point = False
        adjustment.refine_extra_params = False
        adjustment.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
        adjustment.ceres.solver_options.num_threads = 1
        pycolmap.bundle_adjustment(reconstruction, adjustment)
        return reconstruction


def _cameras_of(reconstruction) -> dict[str, dict]:
    """Per registered camera: ``cam_from_world [4,4]``, focal length, centre, squared residuals."""
    out = {}
    for image in reconstruction.images.values():
        if not image.has_pose:
            continue
        model = reconstruction.cameras[image.camera_id]
        cam_from_world = np.eye(4)
        cam_from_world[:3, :] = image.cam_from_world().matrix()
        squared = []
        for point in image.points2D:
            if point.has_point3D():
                projected = model.img_from_cam(
                    image.cam_from_world() * reconstruction.points3D[point.point3D_id].xyz
                )
                if projected is not None:  # None: behind the camera
                    squared.append(float(np.sum(np.square(projected - point.xy))))
        out[Path(image.name).stem] = {
            "cam_from_world": cam_from_world,
            "focal_px": float(model.mean_focal_length()),
            "centre": -cam_from_world[:3, :3].T @ cam_from_world[:3, 3],
            "squared_px": squared,
        }
    return out


def _robust_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """``[3, 4]`` (s R | t) with ``target ≈ s R source + t`` from matched camera centres ``[M, 3]``,
    re-estimated without the centres that miss by more than 3x the median miss (a camera misregistered
    at one instant must not tilt the whole instant)."""
    import pycolmap

    keep = np.ones(len(source), bool)
    for _ in range(2):
        if keep.sum() < 3:
            return None
        estimate = pycolmap.estimate_sim3d(source[keep], target[keep])
        if estimate is None:
            return None
        similarity = estimate.matrix()
        miss = np.linalg.norm(source @ similarity[:, :3].T + similarity[:, 3] - target, axis=1)
        keep = miss <= 3 * np.median(miss) + 1e-12
    return similarity


def _robust_mean_pose(poses: list[np.ndarray], max_deviation_deg: float) -> np.ndarray:
    """Mean of the poses whose rotation is within ``max_deviation_deg`` of the medoid rotation (the pose
    nearest to all others): one instant's misregistration must not move the camera's mean."""
    rotations = np.stack([p[:3, :3] for p in poses])
    cosines = (np.einsum("aij,bij->ab", rotations, rotations) - 1) / 2  # cos of the relative angle
    angles = np.degrees(np.arccos(np.clip(cosines, -1, 1)))
    medoid = int(np.argmin(angles.sum(1)))
    return _mean_pose([p for p, a in zip(poses, angles[medoid], strict=True) if a <= max_deviation_deg])


def _triangulate(projections: list[np.ndarray], normalized: np.ndarray) -> np.ndarray:
    """Linear (DLT) triangulation of one point from ``cam_from_rig [3, 4]`` matrices and its normalized
    image coordinates ``[M, 2]``."""
    rows = []
    for projection, (u, v) in zip(projections, normalized, strict=True):
        rows += [u * projection[2] - projection[0], v * projection[2] - projection[1]]
    homogeneous = np.linalg.svd(np.array(rows))[2][-1]
    return homogeneous[:3] / homogeneous[3]


def _reprojection_errors(reconstruction) -> dict[tuple[int, int], float]:
    """Pixel error of every observation ``(image_id, point2D_idx)`` (inf: behind the camera)."""
    errors = {}
    for image in reconstruction.images.values():
        observed = [(k, p) for k, p in enumerate(image.points2D) if p.has_point3D()]
        if not observed:
            continue
        xyz = np.array([reconstruction.points3D[p.point3D_id].xyz for _, p in observed])
        in_camera = image.cam_from_world() * xyz
        projected = reconstruction.cameras[image.camera_id].img_from_cam(in_camera)  # NaN: behind
        miss = np.linalg.norm(projected - np.array([p.xy for _, p in observed]), axis=1)
        miss[~np.isfinite(miss) | (in_camera[:, 2] <= 0)] = np.inf
        errors.update({(image.image_id, k): float(m) for (k, _), m in zip(observed, miss, strict=True)})
    return errors


def _drop_outliers(reconstruction, max_error_px: float) -> int:
    """Delete the observations reprojecting further than ``max_error_px`` (and points left with < 2)."""
    errors = _reprojection_errors(reconstruction)
    dropped = 0
    for point_id in list(reconstruction.point3D_ids()):
        track = reconstruction.points3D[point_id].track
        bad = [
            (e.image_id, e.point2D_idx)
            for e in track.elements
            if errors[(e.image_id, e.point2D_idx)] > max_error_px
        ]
        if not bad:
            continue
        dropped += len(bad)
        if track.length() - len(bad) < 2:
            reconstruction.delete_point3D(point_id)
        else:
            for image_id, point2D_idx in bad:
                reconstruction.delete_observation(image_id, point2D_idx)
    return dropped


def _rig_adjustment(
    instants: list,
    cam_from_rig: dict[str, np.ndarray],
    intrinsics: dict,
    frontal: str,
    params: SfmParams,
    refine_intrinsics: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[float]], dict]:
    """Joint bundle adjustment of all instants with the rig constraint (COLMAP's rig model): one
    ``sensor_from_rig`` pose and one set of intrinsics per camera shared by every instant (a frame per
    instant, its ``rig_from_world`` held at the identity: the cameras do not move, so the world is the
    rig's frame, that of ``frontal``), 3D points per instant (the head moves). ``instants``: per
    instant the pycolmap reconstruction. ``intrinsics``: per camera its initial pycolmap camera (any
    model). The instants' tracks are re-triangulated from the initial ``cam_from_rig`` poses (their
    own reconstructions disagree by up to degrees) and kept where they reproject within
    :attr:`SfmParams.triangulation_max_error_px`. With ``refine_intrinsics`` the last passes refine the
    focal lengths and extra parameters too, else only poses and points move. Returns per camera the
    refined ``cam_from_rig [4,4]``, the camera parameters (COLMAP order of the camera's model), the
    squared residuals, and diagnostics."""
    import pycolmap

    cameras = list(cam_from_rig)
    merged = pycolmap.Reconstruction()
    sensors = {}
    for index, camera in enumerate(cameras):
        initial = intrinsics[camera]
        model = pycolmap.Camera(
            camera_id=index + 1,
            model=initial.model,
            width=initial.width,
            height=initial.height,
            params=initial.params,
        )
        merged.add_camera(model)
        sensors[camera] = merged.cameras[index + 1].sensor_id
    rig = pycolmap.Rig(rig_id=1)
    rig.add_ref_sensor(sensors[frontal])
    for camera in cameras:
        if camera != frontal:
            rig.add_sensor(sensors[camera], pycolmap.Rigid3d(cam_from_rig[camera][:3, :]))
    merged.add_rig(rig)
    for number, reconstruction in enumerate(instants):
        new_id = {}
        for image in reconstruction.images.values():
            camera = Path(image.name).stem
            if image.has_pose and camera in cam_from_rig:
                new_id[image.image_id] = number * len(cameras) + cameras.index(camera) + 1
        keypoints: dict[int, list[np.ndarray]] = {i: [] for i in new_id.values()}
        tracks = []
        for point in reconstruction.points3D.values():
            observations = []
            for element in point.track.elements:
                if element.image_id in new_id:
                    image = reconstruction.images[element.image_id]
                    camera = Path(image.name).stem
                    observations.append(
                        (new_id[element.image_id], camera, image.points2D[element.point2D_idx].xy)
                    )
            if len(observations) < 2:
                continue
            projections = [cam_from_rig[c][:3, :] for _, c, _ in observations]
            normalized = np.array([intrinsics[c].cam_from_img(xy) for _, c, xy in observations])
            xyz = _triangulate(projections, normalized)
            kept = []
            for projection, (image_id, camera, xy) in zip(projections, observations, strict=True):
                in_camera = projection[:, :3] @ xyz + projection[:, 3]
                if in_camera[2] <= 0:
                    continue
                miss = np.linalg.norm(intrinsics[camera].img_from_cam(in_camera) - xy)
                if miss <= params.triangulation_max_error_px:
                    kept.append((image_id, len(keypoints[image_id])))
                    keypoints[image_id].append(xy)
            if len(kept) >= 2:
                tracks.append((xyz, kept))
        frame = pycolmap.Frame(frame_id=number + 1, rig_id=1)
        frame.rig_from_world = pycolmap.Rigid3d()
        images = []
        for image_id, points in keypoints.items():
            camera = cameras[(image_id - 1) % len(cameras)]
            image = pycolmap.Image(
                name=f"{number:03d}/{camera}",
                keypoints=np.array(points, float).reshape(-1, 2),
                camera_id=cameras.index(camera) + 1,
                image_id=image_id,
            )
            image.frame_id = number + 1
            frame.add_data_id(image.data_id)
            images.append(image)
        merged.add_frame(frame)
        for image in images:
            merged.add_image(image)
        for xyz, kept in tracks:
            merged.add_point3D(xyz, pycolmap.Track([pycolmap.TrackElement(i, k) for i, k in kept]))
    options = pycolmap.BundleAdjustmentOptions()
    options.print_summary = False
    options.refine_rig_from_world = False  # gauge: the rig is the world; scale is fixed by the baseline later
    options.refine_sensor_from_rig = True
    options.refine_principal_point = False  # not observable here, or known (docs/measurements.md)
    options.ceres.loss_function_type = pycolmap.LossFunctionType.CAUCHY
    options.ceres.solver_options.num_threads = 1
    # Ceres' default; COLMAP's 0 runs all 100 iterations on this weakly conditioned problem (distant
    # background points, a free scale) for cost changes below 1e-4 px
    options.ceres.solver_options.function_tolerance = 1e-6
    # Poses and points first (intrinsics from the instants, or known), then the intrinsics too unless
    # known, dropping the observations that do not fit after each pass.
    options.refine_focal_length = options.refine_extra_params = False
    pycolmap.bundle_adjustment(merged, options)
    dropped = _drop_outliers(merged, params.max_error_px)
    options.refine_focal_length = options.refine_extra_params = refine_intrinsics
    pycolmap.bundle_adjustment(merged, options)
    dropped += _drop_outliers(merged, params.max_error_px)
    pycolmap.bundle_adjustment(merged, options)
    refined_pose, camera_params, squared = {}, {}, {c: [] for c in cameras}
    for camera in cameras:
        pose = np.eye(4)
        if camera != frontal:
            pose[:3, :] = merged.rig(1).sensor_from_rig(sensors[camera]).matrix()
        refined_pose[camera] = pose
        camera_params[camera] = np.array(merged.cameras[cameras.index(camera) + 1].params)
    for (image_id, _), error in _reprojection_errors(merged).items():
        squared[cameras[(image_id - 1) % len(cameras)]].append(error**2)
    models = sorted({intrinsics[c].model.name for c in cameras})
    diagnostics = {
        "joint_adjustment": f"rig bundle adjustment over {len(instants)} instants, {', '.join(models)}"
        + ("" if refine_intrinsics else ", poses only (intrinsics fixed)"),
        "joint_points": merged.num_points3D(),
        "joint_observations": merged.compute_num_observations(),
        "joint_dropped_observations": dropped,
    }
    return refined_pose, camera_params, squared, diagnostics


@contextlib.contextmanager
def _colmap_errors_only():
    """COLMAP (glog) logs every mapper step, and Ceres every linear-solver retry of the weakly
    conditioned rig adjustment, as info/warning lines on stderr: ~3000 lines over the default
    fallback, burying the progress bars. Keep COLMAP's errors only for the duration."""
    import pycolmap

    from gsbench.native_log import quiet_native_stderr

    previous = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2  # glog: 0 info, 1 warning, 2 error (not honoured by every step)
    try:
        with quiet_native_stderr():  # what still comes: info/warning lines dropped, the rest kept
            yield
    finally:
        pycolmap.logging.minloglevel = previous


@_colmap_errors_only()
def sfm_calibrate(
    images_by_camera: dict[str, np.ndarray],
    baseline: BaselineSpec | None,
    frontal: str,
    rig_file: Path,
    video_paths: dict[str, str],
    params: SfmParams = SfmParams(),
    intrinsics: IntrinsicsSpec | None = None,
) -> tuple[dict[str, CameraCalibration], dict]:
    """``images_by_camera[camera]``: ``[N, H, W, 3]`` RGB frames of the same N synchronized instants.
    ``intrinsics``: known intrinsics of every camera, held fixed (module docstring), else estimated."""
    import pycolmap

    if baseline is None:
        raise ConfigError(
            "key 'baseline': the session has no calibration take, and structure from motion needs a known "
            "distance between two cameras for the metric scale",
            path=rig_file,
            fix="add baseline: {camera_a: ..., camera_b: ..., distance_m: ...} or a ChArUco calibration take",
        )
    pycolmap.set_random_seed(params.seed)
    cameras = list(images_by_camera)
    num_instants = min(len(frames) for frames in images_by_camera.values())
    height, width = images_by_camera[cameras[0]].shape[1:3]
    known = None
    if intrinsics is not None:
        known = {}
        for camera in cameras:
            spec = intrinsics.cameras[camera]
            video_height, video_width = images_by_camera[camera].shape[1:3]
            if (spec.width, spec.height) != (video_width, video_height):
                raise ConfigError(
                    f"camera {camera}: the intrinsics are for {spec.width}x{spec.height} images, its video "
                    f"{video_paths[camera]} is {video_width}x{video_height}",
                    path=intrinsics.path,
                    fix=f"use intrinsics of this rig at its recording resolution, or remove the key "
                    f"'intrinsics' from {rig_file}",
                )
            known[camera] = known_camera(np.array(spec.K), np.array(spec.dist), spec.width, spec.height)
    with tempfile.TemporaryDirectory(prefix="gsbench-sfm-") as tmp:
        instants = [
            _Instant(Path(tmp) / f"instant{t:03d}", {c: images_by_camera[c][t] for c in cameras}, params)
            for t in range(num_instants)
        ]
        focal_px = None
        if known is None:
            # Focal length: the candidate that registers most cameras at the first instant (ties: the
            # smaller reprojection error), then the median of the per-camera focal lengths it refines to.
            trials = []
            for factor in params.focal_factors:
                reconstruction = instants[0].map(factor * max(width, height))
                if reconstruction is not None:
                    found = _cameras_of(reconstruction)
                    error = reconstruction.compute_mean_reprojection_error()
                    median_focal = float(np.median([v["focal_px"] for v in found.values()]))
                    trials.append((-len(found), error, median_focal))
            if not trials:
                raise StageError(
                    "structure from motion registered no images",
                    path=rig_file,
                    fix="record a ChArUco calibration take (see docs/interfaces.md)",
                )
            focal_px = min(trials)[2]
        per_instant, reconstructions = [], []
        for instant in instants:
            reconstruction = instant.map(focal_px, known)
            if reconstruction is not None and reconstruction.num_reg_images() >= 3:
                per_instant.append(_cameras_of(reconstruction))
                reconstructions.append(reconstruction)
    if not per_instant:
        raise StageError(
            "structure from motion registered fewer than 3 cameras at every instant",
            path=rig_file,
            fix="record a ChArUco calibration take (see docs/interfaces.md)",
        )
    # Bring every instant onto the one that registered the most cameras (similarity of the centres).
    reference = max(per_instant, key=len)
    poses: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    focals: dict[str, list[float]] = {c: [] for c in cameras}
    aligned = []
    for found, reconstruction in zip(per_instant, reconstructions, strict=True):
        shared = [c for c in found if c in reference]
        if len(shared) < 3:
            continue
        similarity = _robust_similarity(
            np.array([found[c]["centre"] for c in shared]), np.array([reference[c]["centre"] for c in shared])
        )
        if similarity is None:
            continue
        aligned.append(reconstruction)
        scale = float(np.cbrt(np.linalg.det(similarity[:, :3])))
        instant_from_ref = np.eye(4)
        instant_from_ref[:3, :3] = similarity[:, :3].T / scale
        instant_from_ref[:3, 3] = -instant_from_ref[:3, :3] @ similarity[:, 3] / scale
        for camera, view in found.items():
            pose = view["cam_from_world"] @ instant_from_ref  # ref-scaled: cam_from_ref up to translation
            pose[:3, 3] *= scale
            poses[camera].append(pose)
            focals[camera].append(view["focal_px"])
    missing = [c for c, p in poses.items() if not p]
    if missing:
        raise StageError(
            f"camera {missing[0]}: structure from motion could not register it at any of the "
            f"{num_instants} instants ({len(missing)} camera(s) unregistered: {', '.join(missing)})",
            path=video_paths[missing[0]],
            fix="check that this camera sees the subject and the studio like its neighbours, or record a "
            "ChArUco calibration take (see docs/interfaces.md)",
        )
    mean_pose = {c: _robust_mean_pose(p, params.max_pose_deviation_deg) for c, p in poses.items()}
    rig_from_ref = np.linalg.inv(mean_pose[frontal])
    initial = known or {
        c: pycolmap.Camera.create_from_model_name(0, params.camera_model, float(np.median(f)), width, height)
        for c, f in focals.items()
    }  # from scratch: the instants' median focal length, no distortion
    cam_from_world, camera_params, squared, joint = _rig_adjustment(
        aligned,
        {c: pose @ rig_from_ref for c, pose in mean_pose.items()},
        initial,
        frontal,
        params,
        refine_intrinsics=known is None,
    )
    centre = {c: -m[:3, :3].T @ m[:3, 3] for c, m in cam_from_world.items()}
    distance = float(np.linalg.norm(centre[baseline.camera_a] - centre[baseline.camera_b]))
    if distance <= 0:
        raise StageError("baseline cameras coincide in the reconstruction", path=rig_file)
    scale = baseline.distance_m / distance
    ref_from_world = cam_from_world[frontal]
    cam_from_ref = {}
    for camera, pose in cam_from_world.items():
        relative = pose @ np.linalg.inv(ref_from_world)
        relative[:3, 3] *= scale
        cam_from_ref[camera] = relative
    world = rig_world_from_ref(cam_from_ref, frontal)
    calibrations = {}
    for camera in cameras:
        if known is None:
            focal, cx, cy, *radial = camera_params[camera]  # SIMPLE_RADIAL: k1; RADIAL: k1, k2
            K = np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]])
            dist = np.zeros(5)
            dist[: len(radial)] = radial  # COLMAP's radial terms are OpenCV's k1, k2
        else:  # the file's values as they are (fixed throughout)
            K, dist = np.array(intrinsics.cameras[camera].K), np.array(intrinsics.cameras[camera].dist)
        calibrations[camera] = CameraCalibration(
            camera_id=camera, width=width, height=height,
            K=K, dist=dist, world_to_cam=cam_from_ref[camera] @ world,
            num_views=len(poses[camera]),
            rms_px=float(np.sqrt(np.mean(squared[camera]))) if squared[camera] else float("nan"),
        )  # fmt: skip
    diagnostics = {
        "method": "structure from motion (pycolmap): one reconstruction per instant, then a joint rig "
        "bundle adjustment",
        "instants": num_instants,
        "instants_used": len(per_instant),
        "registered_per_instant": [len(found) for found in per_instant],
        "scale_from_baseline": scale,
        **joint,
    }
    if known is None:
        diagnostics["mapping_focal_px"] = focal_px
        diagnostics["not_estimated"] = "principal point (image centre)" + (
            ", k2 and tangential distortion (zero)" if params.camera_model == "SIMPLE_RADIAL" else ""
        )
    else:
        diagnostics["intrinsics"] = f"from {intrinsics.path} (fixed)"
        diagnostics["intrinsics_sha256"] = intrinsics.sha256
    return calibrations, diagnostics
