"""The matrix operations of a fully connected layer, for a block of samples stored as rows.

A block of nb samples is a (nb, n) C-order view (row k = sample k): inputs A (nb, n_in),
pre-activations Z and deltas D (nb, n_out); a layer's weights are the (n_out, n_in) view W of
the flat parameter vector and its bias the (n_out,) view b (:func:`layer`). The products run in
the explicit SIMD kernels of :mod:`dynclip._simd`: blocks of :data:`BLOCK_MIN_ROWS` rows or more
use the register-blocked :func:`gemm_rows` (four rows by up to 32 columns held in registers
across the sum; the forward pass first transposes W), smaller blocks the row kernels
(``affine8``'s eight-lane dot products, ``ger_rows``, ``axpy_rows``), whose call and transpose
costs are lower for a few rows. The weight gradients and the backward pass sum in the same
order in both forms (bit-identical up to the sign of a zero); the forward forms differ in rounding.
On the 32 x 32 blocks of a typical
minibatch the blocked kernel ran 3x faster than BLAS dgemm (whose fixed cost per call
dominates at this size). The view helpers are inlined (a function compiled without reference
counting may not return a view). Every form is fixed-order and deterministic, and a block size
always takes the same path.
"""
from ._jit import hot, hot_inline
from ._simd import affine8, axpy_rows, gemm_rows, ger_rows, matrix_view, flat_view

#: blocks of at least this many rows use the register-blocked product, smaller ones the row kernels
BLOCK_MIN_ROWS = 16


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


@hot_inline
def transpose(src, dst, nr, nc):
    """dst = src^T for src (nr, nc) and dst (nc, nr), both flat in C order (written in order)."""
    for j in range(nc):
        for i in range(nr):
            dst[j * nr + i] = src[i * nc + j]


@hot
def gemm(c, ldc, a, sa_i, sa_p, b, ldb, m, n, k, accumulate):
    """c (+)= a b (:func:`dynclip._simd.gemm_rows` at offset 0), compiled once for all its callers."""
    gemm_rows(c, 0, ldc, a, 0, sa_i, sa_p, b, 0, ldb, m, n, k, accumulate)


@hot
def affine(W, A, b, Z, wt):
    """Z = A W^T + b: row k of Z is W a_k + b. ``wt`` is a scratch of >= max(W.size, 16) entries
    (block form)."""
    nb, ni = A.shape
    no = W.shape[0]
    z = flat(Z)
    w = flat(W)
    a = flat(A)
    if nb >= BLOCK_MIN_ROWS and no < 8:
        # a narrow output layer: eight samples at a time, each output one dot product per sample
        # (the same sums as the row form below, with the roles of W and the samples exchanged)
        for o in range(no):
            for j in range(8):
                wt[j] = b[o]
            for k0 in range(0, nb, 8):
                m = min(8, nb - k0)
                affine8(a, k0 * ni, ni, w, o * ni, ni, m, wt, 0, wt, 8)
                for j in range(m):
                    z[(k0 + j) * no + o] = wt[8 + j]
        return
    if nb >= BLOCK_MIN_ROWS:
        transpose(w, wt, no, ni)        # wt = W^T (n_in, n_out), rows contiguous over the outputs
        gemm(z, no, a, ni, 1, wt, no, nb, no, ni, False)
        ger_rows(z, 0, no, None, 0, nb, b, 0, no, False)            # + b, row by row
        return
    for k in range(nb):
        # eight outputs at a time: bias + eight-lane dot products (the SIMD row kernel)
        for o in range(0, no, 8):
            affine8(w, o * ni, ni, a, k * ni, ni, min(8, no - o), b, o, z, k * no + o)


@hot
def weight_grads(G, gb, D, A, overwrite, wt):
    """G (+)= D^T A = sum_k d_k a_k^T and gb (+)= sum_k d_k (the rank-1 updates of all samples
    of the block, summed in sample order), or ``=`` with ``overwrite``. Below BLOCK_MIN_ROWS
    rows, one rank-1 update per sample (the same sums; no call into the blocked kernel). ``wt``
    is a scratch of >= G.size entries (block form)."""
    nb, no = D.shape
    ni = A.shape[1]
    d = flat(D)
    g = flat(G)
    a = flat(A)
    if nb >= BLOCK_MIN_ROWS:
        if ni < 8 <= no:
            # narrow rows of G: build G^T = A^T D instead (full vectors over the outputs, the same
            # sums in the same order), then transpose it into G
            if not overwrite:
                transpose(g, wt, no, ni)
            gemm(wt, no, a, 1, ni, d, no, ni, no, nb, not overwrite)
            transpose(wt, g, ni, no)
        else:
            gemm(g, ni, d, 1, no, a, ni, no, ni, nb, not overwrite)
        axpy_rows(d, 0, no, None, 0, nb, gb, 0, no, not overwrite)   # gb (+)= column sums of D
        return
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
def backprop(D, W, Dprev):
    """Dprev = D W: the deltas carried back through the weights (row k: W^T d_k, summed over the
    rows of W in order; one row at a time below BLOCK_MIN_ROWS rows, the same sums)."""
    nb, no = D.shape
    ni = W.shape[1]
    d = flat(D)
    w = flat(W)
    p = flat(Dprev)
    if nb >= BLOCK_MIN_ROWS:
        gemm(p, ni, d, no, 1, w, ni, nb, ni, no, False)
        return
    for k in range(nb):
        axpy_rows(w, 0, ni, d, k * no, no, p, k * ni, ni, False)
