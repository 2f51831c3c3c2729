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


def test_scalar_and_eight_lane_forms_agree_bit_for_bit():
    """The scalar tanh and the <8 x double> tanh_lanes are emitted from one IR definition."""
    from dynclip._fastmath import tanh as scalar_tanh
    from dynclip._jit import hot

    @hot
    def scalar_loop(x, out):
        for i in range(x.shape[0]):
            out[i] = scalar_tanh(x[i])

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 2, 100_000), np.linspace(-0.7, 0.7, 10_001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    lanes, scal = np.empty_like(x), np.empty_like(x)
    tanh_array(x, lanes)
    scalar_loop(x, scal)
    np.testing.assert_array_equal(lanes.view(np.int64), scal.view(np.int64))
