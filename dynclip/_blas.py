"""``out = A @ B`` through BLAS dgemm, callable from kernels compiled without reference counting.

Numba's ``np.dot(A, B, out)`` needs its runtime's reference counting, which dynclip's hot
kernels leave out (:func:`dynclip._jit.hot`), so this intrinsic calls the same BLAS entry
point as ``np.dot`` directly. The caller guarantees the shapes: A (m, k), B (k, n),
out (m, n), each C- or F-contiguous, out C-contiguous, all dimensions >= 1.
"""
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic
from numba.np import linalg


@intrinsic
def matmul(typingctx, a, b, out):
    if not all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == types.float64 for t in (a, b, out)) \
            or a.layout not in "CF" or b.layout not in "CF" or out.layout != "C":
        return None
    sig = types.none(a, b, out)

    def codegen(context, builder, signature, args):
        linalg.ensure_blas()
        arrs = [context.make_array(t)(context, builder, value=v) for t, v in zip(signature.args, args)]
        shapes = [cgutils.unpack_tuple(builder, x.shape) for x in arrs]
        linalg.call_xxgemm(context, builder, a, shapes[0], arrs[0].data, b, shapes[1], arrs[1].data,
                           out, shapes[2], arrs[2].data)
        return context.get_dummy_value()

    return sig, codegen
