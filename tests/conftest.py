import numpy as np
import pytest

import dynclip as dc


def rule_dict(rule):
    """The naive twin's description of a ClipRule."""
    k = dc.clipping.ClipKind(rule.kind).name
    d = {"kind": k, "lam": rule.lam, "eps": rule.eps, "beta": rule.beta, "v": rule.lam,
         "convention": dc.clipping.Convention(rule.convention).name,
         "numerator": ("layer", "global")[rule.numerator]}
    return d


@pytest.fixture
def small_problem():
    rng = np.random.default_rng(3)
    net = dc.mlp([3, 6, 5, 2], activation="tanh")
    X = rng.normal(size=(40, 3))
    Y = rng.normal(size=(40, 2))
    return net, X, Y
