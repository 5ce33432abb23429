"""Differentiable Gaussian rasterization: ``rasterize`` (CPU C++/torch backends, gsplat on CUDA).

``reference.rasterize_reference`` is the brute-force float64 version the tests compare against.
"""

from avatars.render.rasterization import BACKENDS, RenderOutput, rasterize

__all__ = ["BACKENDS", "RenderOutput", "rasterize"]
