"""Options shared by several ``gsbench`` commands, declared once so their choices and help agree."""

from __future__ import annotations

import click

lse_boxes_option = click.option(
    "--lse-boxes",
    type=click.Choice(["mediapipe", "s3fd"]),
    default="mediapipe",
    show_default=True,
    help="Face boxes of the SyncNet crops: MediaPipe landmarks (default) or syncnet_python's S3FD tracks, "
    "the official pipeline's (registered weights s3fd-sfd-face; missing weights make LSE 'missing').",
)

lmd_detector_option = click.option(
    "--lmd-detector",
    type=click.Choice(["mediapipe", "fan"]),
    default="mediapipe",
    show_default=True,
    help="Landmarks for LMD: MediaPipe FaceMesh (offline default) or face_alignment's 2D-FAN, the papers' "
    "detector (registered weights fan-2d: gsbench weights add fan-2d FILE; missing weights make LMD "
    "'missing').",
)


def set_option(example: str, keys: str):
    """The repeatable ``--set KEY=VALUE`` of ``ingest``, ``track`` and ``run`` (parsed by
    :func:`gsbench.overrides.parse_overrides`: dotted KEY, VALUE a YAML scalar or list such as 500, 1e-4,
    true, depth, [1, 2]). ``keys`` says what KEY names for the command, ``example`` shows one."""
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help=f"Change a setting (repeatable): {keys}; VALUE is a YAML scalar or list (500, 1e-4, true, "
        f"depth, [1, 2]). E.g. --set {example}. Unknown keys are refused with the list of valid ones.",
    )
