"""Dimensions of ``gsbench-head`` (metres, FLAME frame: y up, +z out of the face, +x = subject's left).

One place for the numbers the geometry, texture, rig and landmark embedding must agree on. The
values are adult averages (head width ~0.15 m, interpupillary distance ~0.063 m, eye to chin
~0.12 m).
"""

from __future__ import annotations

import numpy as np

# Centre of the radial parameterization: every surface point is centre + r(theta, phi) * direction.
CENTRE = np.array([0.0, 0.0, 0.0])

EYE_X = 0.0315  # |x| of the eyeball centres
EYE_Y = 0.024
EYE_Z = 0.062
EYE_RADIUS = 0.0122
LID_GAP = 0.0016  # eyelid skin rests this far outside the eyeball
# Palpebral fissure (eye opening), in eye-local (lateral u, vertical v) metres.
EYE_OPEN_INNER = -0.0135  # inner corner u (toward the nose)
EYE_OPEN_OUTER = 0.0150  # outer corner u
EYE_OPEN_UP = 0.0058  # upper lid height at its peak
EYE_OPEN_DOWN = 0.0042  # lower lid depth at its lowest
EYE_CORNER_TILT = 0.0012  # outer corner this much higher than the inner one

MOUTH_Y = -0.047  # mouth line (lip contact) at the centre
MOUTH_HALF_WIDTH = 0.0245  # corners at x = +-MOUTH_HALF_WIDTH
UPPER_LIP_HEIGHT = 0.0085  # vermilion height of the upper lip at the centre
LOWER_LIP_HEIGHT = 0.0095

NOSE_TIP_Y = -0.012
SUBNASALE_Y = -0.025
NASION_Y = 0.030
BROW_Y = 0.043  # eyebrow centre line above the eye centre
HAIRLINE_Y = 0.082  # front hairline at the midline
CHIN_Y = -0.103  # menton

# Joints (template positions the J_regressor reproduces).
ROOT_JOINT = np.array([0.0, -0.165, -0.018])
NECK_JOINT = np.array([0.0, -0.045, -0.022])
JAW_JOINT = np.array([0.0, -0.012, 0.002])

TEETH_FRONT_Z = 0.081  # front of the incisors at the midline
TEETH_ARCH_RADIUS = 0.026


def brow_curve(side: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eyebrow centre line at ``t`` in [0, 1] from the inner to the outer end -> (x, y)."""
    t = np.asarray(t, np.float64)
    x = side * (0.011 + 0.046 * t)
    y = BROW_Y - 0.001 + 0.0065 * np.sin(np.pi * np.clip(t * 0.85, 0, 1)) - 0.006 * t**2
    return x, y


def brow_half_thickness(t: np.ndarray) -> np.ndarray:
    return 0.0042 - 0.0022 * np.asarray(t, np.float64) ** 1.5


def upper_lip_outline(x: np.ndarray) -> np.ndarray:
    """y of the upper vermilion border (with a cupid's bow) at ``x``; MOUTH_Y beyond the corners."""
    s = np.clip(np.abs(x) / MOUTH_HALF_WIDTH, 0.0, 1.0)
    bow = 1.0 + 0.12 * np.exp(-(((s - 0.22) / 0.12) ** 2)) - 0.10 * np.exp(-((s / 0.08) ** 2))
    return MOUTH_Y + UPPER_LIP_HEIGHT * (1.0 - s**2) ** 0.55 * bow


def lower_lip_outline(x: np.ndarray) -> np.ndarray:
    s = np.clip(np.abs(x) / MOUTH_HALF_WIDTH, 0.0, 1.0)
    return MOUTH_Y - LOWER_LIP_HEIGHT * (1.0 - s**2) ** 0.7


EYE_UV_CENTRE = (0.1, 0.1)
EYE_UV_RADIUS = 0.095


def eye_uv_radius(polar: np.ndarray) -> np.ndarray:
    """Atlas radius of an eyeball point at ``polar`` angle from the gaze axis (front gets more texels)."""
    return EYE_UV_RADIUS * (np.asarray(polar) / np.pi) ** 0.6


def eye_polar_from_uv_radius(radius: np.ndarray) -> np.ndarray:
    return np.pi * (np.asarray(radius) / EYE_UV_RADIUS) ** (1.0 / 0.6)
