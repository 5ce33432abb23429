"""One per-Gaussian parameter set and one optimizer surgery, shared by every Gaussian model.

Names and storage follow gsplat's trainer: ``means [N, 3]``, ``scales [N, 3]`` (log), ``quats [N, 4]``
(wxyz, unnormalized), ``opacities [N]`` (logit), plus any per-Gaussian appearance a model adds
(``sh0 [N, 1, 3]``, ``shN [N, K, 3]``, ``rgb``, ``latent``, ...). The static model
(:class:`avatars.gaussians.GaussianModel`) stores them in the world frame; the rigged avatar
(:class:`avatars.rigged.RiggedGaussians`) stores the geometry local to each Gaussian's parent triangle.

Densification and pruning change the number of Gaussians, so every per-Gaussian tensor, and Adam's moments
of it, must be rebuilt alike: :meth:`GaussianParameters.select` gathers rows by an index (a Gaussian kept,
cloned or split appears once per copy) and :func:`swap_in_optimizer` moves the optimizer state with them,
new rows starting from zero moments (3DGS ``cat_tensors_to_optimizer`` / ``_prune_optimizer``).
"""

from __future__ import annotations

import torch
from torch import Tensor

GEOMETRY = ("means", "scales", "quats", "opacities")
"""The per-Gaussian geometry every model has (raw, before activation)."""


class GaussianParameters(torch.nn.Module):
    """A ``ParameterDict`` of per-Gaussian tensors (first dimension N), with row surgery that keeps an
    optimizer in step. Subclasses with other per-Gaussian buffers extend :meth:`_select_buffers`."""

    def __init__(self, **params: Tensor):
        super().__init__()
        self.params = torch.nn.ParameterDict(
            {name: torch.nn.Parameter(value) for name, value in params.items()}
        )

    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def __len__(self) -> int:
        return self.num_gaussians

    def add_param(self, name: str, value: Tensor) -> None:
        """Add a per-Gaussian parameter (e.g. an appearance code); it is densified and pruned alike."""
        if value.shape[0] != self.num_gaussians:
            raise ValueError(f"parameter {name} has {value.shape[0]} rows, not {self.num_gaussians}")
        self.params[name] = torch.nn.Parameter(value.detach().clone())

    def select(
        self,
        index: Tensor,
        optimizer: torch.optim.Optimizer | None = None,
        new_rows: Tensor | None = None,
        values: dict[str, Tensor] | None = None,
    ) -> None:
        """Replace every per-Gaussian tensor by ``tensor[index]`` (``values[name]`` instead where given,
        already in the new order). In ``optimizer``, the per-row state follows ``index`` and the rows where
        ``new_rows`` [len(index)] is True (clones, split children) start at zero."""
        if new_rows is None:
            new_rows = torch.zeros(index.shape[0], dtype=torch.bool)
        values = values or {}
        for name in list(self.params.keys()):
            old = self.params[name]
            value = values[name] if name in values else old.detach()[index]
            new = torch.nn.Parameter(value.contiguous(), requires_grad=old.requires_grad)
            if optimizer is not None:
                swap_in_optimizer(optimizer, old, new, index, new_rows)
            self.params[name] = new
        self._select_buffers(index)

    def _select_buffers(self, index: Tensor) -> None:
        """Gather any per-Gaussian buffer of a subclass by ``index`` (none here)."""

    def reset_param(self, name: str, value: Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Set parameter ``name`` to ``value`` (same shape) and clear its optimizer moments (3DGS opacity
        reset)."""
        old = self.params[name]
        new = torch.nn.Parameter(value.detach().contiguous(), requires_grad=old.requires_grad)
        if optimizer is not None:
            rows = torch.arange(old.shape[0])
            swap_in_optimizer(optimizer, old, new, rows, torch.ones(old.shape[0], dtype=torch.bool))
        self.params[name] = new


def swap_in_optimizer(
    optimizer: torch.optim.Optimizer,
    old: torch.nn.Parameter,
    new: torch.nn.Parameter,
    index: Tensor,
    new_rows: Tensor,
) -> None:
    """Put ``new`` in place of ``old`` in ``optimizer``: its per-row state (Adam's ``exp_avg``,
    ``exp_avg_sq``) gathered by ``index`` [M] and zeroed where ``new_rows`` [M] is True; scalar state (the
    step count) kept. Nothing happens when ``old`` is not in the optimizer."""
    for group in optimizer.param_groups:
        for position, param in enumerate(group["params"]):
            if param is old:
                group["params"][position] = new
                state = optimizer.state.pop(old, None)
                if state:
                    for key, value in state.items():
                        if torch.is_tensor(value) and value.dim() > 0 and value.shape[0] == old.shape[0]:
                            gathered = value[index].clone()
                            gathered[new_rows] = 0
                            state[key] = gathered
                    optimizer.state[new] = state
                return
