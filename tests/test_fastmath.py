"""The vectorisable tanh stays within 2 ulp of the C library over the whole real line."""
import numpy as np

from dynclip._fastmath import tanh_array


def _ulp_error(x):
    got = np.empty_like(x)
    tanh_array(x, got)
    want = np.tanh(x)
    err = np.abs(got - want) / np.spacing(np.abs(want))
    err[want == 0] = np.abs(got[want == 0]) / np.spacing(0.0)
    return err, got


def test_tanh_within_two_ulp_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-25, 25, 2_000_001), rng.normal(0, 3, 1_000_000),
                        np.logspace(-320, 1.5, 200_000), -np.logspace(-320, 1.5, 200_000),
                        np.nextafter(0.625, [-1, 1]), [0.625, -0.625, 19.999, 20.0, 37.0, 1e300, -1e300]])
    err, _ = _ulp_error(x)
    assert err.max() <= 2.0


def test_tanh_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    got = np.empty_like(x)
    tanh_array(x, got)
    assert got[0] == 0 and got[2] == 1 and got[3] == -1 and np.isnan(got[4])
    assert np.signbit(got[1])
