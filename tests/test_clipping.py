"""Every clip rule = its naive twin; invariants from the paper (eq. 11, 17, Claim 2)."""
import numpy as np
import pytest

import dynclip as dc
from dynclip import clipping as C
from conftest import rule_dict
from reference import clip as ref_clip

NET = dc.mlp([3, 4, 2])
RULES = [C.none(), C.classic(1.0), C.classic(0.3, "torch"), C.classic(2.0, "optax"), C.adaptive(0.5, 0.1),
         C.adaptive(2.0, 1e-3), C.layerwise(0.4, 0.1), C.layerwise(0.4, 0.1, "global"), C.unitwise(0.2, 1e-3),
         C.value(0.05), C.normalized(0.0), C.normalized(0.7)]


def _vectors(n=40, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        scale = 10.0 ** rng.uniform(-3, 2)
        yield rng.normal(size=NET.n_params) * scale, rng.normal(size=NET.n_params) * 10.0 ** rng.uniform(-4, 1)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.describe())
def test_rule_equals_naive_twin(rule):
    for g, th in _vectors():
        u, c = C.clip(rule, g, th, NET)
        np.testing.assert_allclose(u, ref_clip(rule_dict(rule), g, th, list(NET.widths)), rtol=1e-13, atol=1e-300)
        if np.linalg.norm(u) > 0:
            assert c == pytest.approx(np.linalg.norm(g) / np.linalg.norm(u), rel=1e-12)


def test_classic_invariants():
    rule = C.classic(1.3)
    for g, _ in _vectors(200, seed=1):
        u, c = C.clip(rule, g)
        assert np.linalg.norm(u) <= 1.3 * (1 + 1e-15)                  # ||g/c|| <= lam
        if np.linalg.norm(g) <= 1.3:
            np.testing.assert_array_equal(u, g)                      # identity below threshold
            assert c == 1.0
        else:
            assert c == pytest.approx(np.linalg.norm(g) / 1.3)
        u2, _ = C.clip(rule, u)
        np.testing.assert_allclose(u2, u, rtol=1e-15)                # idempotent
        cos = u @ g / (np.linalg.norm(u) * np.linalg.norm(g))
        assert cos == pytest.approx(1.0, abs=1e-14)                  # direction kept


def test_adaptive_claim2_and_radial_law():
    lam, eps = 0.7, 1e-2
    rule = C.adaptive(lam, eps)
    K = lam * max(1.0, eps)
    for g, th in _vectors(300, seed=2):
        u, c = C.clip(rule, g, th)
        nth = np.linalg.norm(th)
        assert np.linalg.norm(u) <= K * (1 + nth) * (1 + 1e-15)       # Claim 2 with K = lam max(1, eps)
        if c > 1:                                                     # eq. 19: ||g/c|| = lam max(||theta||, eps)
            assert np.linalg.norm(u) == pytest.approx(lam * max(nth, eps), rel=1e-14)


def test_conventions_differ_exactly_where_documented():
    lam = 2.0
    d = np.array([0.6, 0.8])
    for n, paper_clips, torch_clips, optax_clips in [(lam, False, True, True), (lam - 1e-9, False, True, False),
                                                    (lam + 1e-9, True, True, True), (1.0, False, False, False)]:
        g = d * n
        for conv, expect in (("paper", paper_clips), ("torch", torch_clips), ("optax", optax_clips)):
            u = np.empty(2)
            c, clipped = C.apply(C.classic(lam, conv), g, np.zeros(2), np.array([2, 1]), np.array([0, 2]), u)
            assert clipped == expect, (conv, n)
            if not expect:
                np.testing.assert_array_equal(u, g)
    # torch's 1e-6: factor lam / (||g|| + 1e-6)
    g = d * 10
    u, c = C.clip(C.classic(lam, "torch"), g)
    np.testing.assert_allclose(u, g * lam / (10 + 1e-6), rtol=1e-15)


def test_value_and_normalized():
    g = np.array([3.0, -0.01, -7.0])
    np.testing.assert_array_equal(C.clip(C.value(1.0), g)[0], [1.0, -0.01, -1.0])
    u, c = C.clip(C.normalized(1.0), g)
    np.testing.assert_allclose(u, g / (np.linalg.norm(g) + 1.0))


@pytest.mark.parametrize("call, match", [
    (lambda: C.classic(0.0), "lam"), (lambda: C.classic(-1), "lam"), (lambda: C.classic(np.nan), "lam"),
    (lambda: C.classic(1.0, "jax"), "convention"), (lambda: C.adaptive(1.0, 0.0), "eps"),
    (lambda: C.adaptive(-1.0, 0.1), "lam"), (lambda: C.layerwise(1.0, 0.1, "row"), "numerator"),
    (lambda: C.unitwise(1.0, -1), "eps"), (lambda: C.value(0), "v"), (lambda: C.normalized(-1), "beta"),
    (lambda: C.alrc(n_sigma=0), "n_sigma"), (lambda: C.alrc(beta1=1.0), "beta1"),
    (lambda: C.alrc(variant="x"), "variant"), (lambda: C.clip("classic", np.ones(2)), "rule"),
    (lambda: C.clip(C.adaptive(1, .1), np.ones(2)), "theta"),
    (lambda: C.clip(C.layerwise(1, .1), np.ones(2), np.ones(2)), "net"),
])
def test_bad_rule_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_rules_are_data():
    r = C.layerwise(0.5, 0.1, "global")
    assert C.ClipRule.from_dict(r.as_dict()) == r
    assert "global" in r.describe()
