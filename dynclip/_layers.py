"""The matrix operations of a fully connected layer, for a block of samples stored as rows.

A block of nb samples is a (nb, n) C-order view (row k = sample k): inputs A (nb, n_in),
pre-activations Z and deltas D (nb, n_out); a layer's weights are the (n_out, n_in) view W of
the flat parameter vector and its bias the (n_out,) view b (:func:`layer`). Each operation
picks its implementation: BLAS (dgemm) for blocks of :data:`BLAS_MIN_ROWS` rows or more, the
explicit SIMD row kernels of :mod:`dynclip._simd` below (a BLAS call's fixed cost dominates on
tiny matrices). The view helpers are inlined (a function compiled without reference counting
may not return a view). Both forms are fixed-order and deterministic; they differ from each other
in rounding, so a block size always takes the same path.
"""
from ._jit import hot, hot_inline
from ._simd import affine8, axpy_rows, ger_rows, matrix_view, flat_view
from ._blas import matmul

#: blocks of at least this many rows use BLAS matrix products (dgemm); smaller ones use
#: compiled loops, which beat a BLAS call's fixed cost on tiny matrices
BLAS_MIN_ROWS = 16


@hot_inline
def block(buf, off, nb, n):
    """The (nb, n) C-order view of buf[off : off + nb n] (one row per sample)."""
    return matrix_view(buf, off, nb, n)


@hot_inline
def layer(theta, widths, offs, l):
    """``(W, b)``: the (n_out, n_in) weight view and (n_out,) bias view of layer l in the flat
    vector theta (layout: W_l in C order, then b_l, layer after layer; also for a gradient)."""
    ni = widths[l]
    no = widths[l + 1]
    o = offs[l]
    return matrix_view(theta, o, no, ni), theta[o + no * ni:o + no * ni + no]


@hot_inline
def flat(M):
    """The 1-D view of a C-contiguous matrix (for the elementwise loops and the row kernels)."""
    return flat_view(M)


@hot
def affine(W, A, b, Z):
    """Z = A W^T + b: row k of Z is W a_k + b."""
    nb, ni = A.shape
    no = W.shape[0]
    z = flat(Z)
    if nb >= BLAS_MIN_ROWS:
        matmul(A, W.T, Z)
        ger_rows(z, 0, no, None, 0, nb, b, 0, no, False)            # + b, row by row
        return
    w = flat(W)
    a = flat(A)
    for k in range(nb):
        # eight outputs at a time: bias + eight-lane dot products (the SIMD row kernel)
        for o in range(0, no, 8):
            affine8(w, o * ni, ni, a, k * ni, ni, min(8, no - o), b, o, z, k * no + o)


@hot
def weight_grads(G, gb, D, A, gt, overwrite):
    """G (+)= D^T A = sum_k d_k a_k^T and gb (+)= sum_k d_k (the rank-1 updates of all samples
    of the block), or ``=`` with ``overwrite``. ``gt`` is a scratch of >= G.size entries (BLAS form)."""
    nb, no = D.shape
    ni = A.shape[1]
    d = flat(D)
    if nb >= BLAS_MIN_ROWS:
        if overwrite:
            matmul(D.T, A, G)
        else:
            T = matrix_view(gt, 0, no, ni)
            matmul(D.T, A, T)
            g = flat(G)
            for k in range(no * ni):
                g[k] += gt[k]
        axpy_rows(d, 0, no, None, 0, nb, gb, 0, no, not overwrite)   # gb (+)= column sums of D
        return
    g = flat(G)
    a = flat(A)
    for k in range(nb):
        first = overwrite and k == 0
        ger_rows(g, 0, ni, d, k * no, no, a, k * ni, ni, first)
        if first:       # (branch hoisted out of the loop, which then vectorises)
            for o in range(no):
                gb[o] = d[k * no + o]
        else:
            for o in range(no):
                gb[o] += d[k * no + o]


@hot
def backprop_rows(D, W, Dprev):
    """Dprev = D W, row by row: Dprev[k] = W^T d_k summed over the rows of W in order (the
    loop form of :func:`backprop`, for any block size)."""
    nb, no = D.shape
    ni = W.shape[1]
    d = flat(D)
    w = flat(W)
    p = flat(Dprev)
    for k in range(nb):
        axpy_rows(w, 0, ni, d, k * no, no, p, k * ni, ni, False)


@hot
def backprop(D, W, Dprev):
    """Dprev = D W: the deltas carried back through the weights (row k: W^T d_k)."""
    if D.shape[0] >= BLAS_MIN_ROWS:
        matmul(D, W, Dprev)
    else:
        backprop_rows(D, W, Dprev)
