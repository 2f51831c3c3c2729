"""dynclip: gradient clipping as a dynamical system.

A Numba stochastic-approximation engine for clipped SGD on small MLPs, the mean-field
vector field H(theta), the ODE theta' = -H(theta), and concentration bounds.
"""
__version__ = "0.1.0"

from . import clipping, optimizers, schedules, bounds, meanfield, ode, data, smoothness, toys, rare, diffusion, gd  # noqa: E402
from .model import mlp, init_params, loss_and_grad, MLP  # noqa: E402
from .engine import simulate, record_times  # noqa: E402
from .sweep import sweep  # noqa: E402
from .results import SAResult, FlowResult  # noqa: E402

__all__ = ["__version__", "clipping", "optimizers", "schedules", "bounds", "meanfield", "ode", "data", "smoothness", "toys", "rare", "diffusion", "gd", "mlp", "init_params", "loss_and_grad", "MLP",
           "simulate", "record_times", "sweep", "SAResult", "FlowResult"]
