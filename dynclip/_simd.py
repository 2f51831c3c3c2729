"""Explicit 8-lane SIMD reductions (the only LLVM-level code in dynclip besides a bitcast).

Strict IEEE forbids LLVM from vectorising a running sum (that would reorder it), and its
SLP vectoriser does not turn dynclip's eight scalar accumulators into one vector register
either, so the sums of squares behind every norm ran one scalar element at a time. These
intrinsics keep the eight accumulators in one ``<8 x double>`` register: lane j sums, in
index order, the elements ``lo + j, lo + j + 8, ...`` -- the same operations in the same
order as eight scalar accumulators, so results are bit-identical to the plain loops in
``tests/test_simd.py``. The caller adds the tail and combines the lanes.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

_F64 = ir.DoubleType()
_V8 = ir.VectorType(_F64, 8)
_LANES = types.UniTuple(types.float64, 8)


def _data(context, builder, ty, val):
    return context.make_array(ty)(context, builder, value=val).data


def _load8(builder, base, i):
    return builder.load(builder.bitcast(builder.gep(base, [i]), _V8.as_pointer()), align=8)


def _reduce8(context, builder, ptrs, lo, m, step):
    """Run ``acc = step(acc, *loaded vectors)`` over i = lo, lo+8, ..., < m; return the lanes."""
    intp = context.get_value_type(types.intp)
    acc = cgutils.alloca_once_value(builder, ir.Constant(_V8, [0.0] * 8))
    with cgutils.for_range_slice(builder, lo, m, ir.Constant(intp, 8), intp) as (i, _):
        builder.store(step(builder, builder.load(acc), *[_load8(builder, p, i) for p in ptrs]), acc)
    vec = builder.load(acc)
    return context.make_tuple(builder, _LANES, [builder.extract_element(vec, ir.Constant(ir.IntType(32), j))
                                                for j in range(8)])


@intrinsic
def sumsq_lanes(typingctx, v, lo, m):
    """Lanes of sum v_i^2 over [lo, m); (m - lo) must be a multiple of 8, 0 <= lo <= m <= len(v)."""
    sig = _LANES(v, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        base = _data(context, builder, signature.args[0], args[0])
        return _reduce8(context, builder, [base], args[1], args[2],
                        lambda b, acc, x: b.fadd(acc, b.fmul(x, x)))

    return sig, codegen


@intrinsic
def sqdist_lanes(typingctx, v, w, m):
    """Lanes of sum (v_i - w_i)^2 over [0, m); m must be a multiple of 8, m <= len(v), len(w)."""
    sig = _LANES(v, w, types.intp)

    def codegen(context, builder, signature, args):
        pv = _data(context, builder, signature.args[0], args[0])
        pw = _data(context, builder, signature.args[1], args[1])
        zero = context.get_constant(types.intp, 0)

        def step(b, acc, x, y):
            d = b.fsub(x, y)
            return b.fadd(acc, b.fmul(d, d))
        return _reduce8(context, builder, [pv, pw], zero, args[2], step)

    return sig, codegen
