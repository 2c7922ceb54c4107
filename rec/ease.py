"""EASE's closed form (Steck 2019): the gram matrix of a binary user x movie matrix and
its Cholesky inverse (LAPACK's spotrf + spotri, in place), each without holding Python's
GIL where that is possible.

scipy.linalg.lapack's and .blas's wrappers hold the GIL for the whole call: in `rec
evaluate`, EASE λ500 is fitted in a thread beside the rank stage's two, and its 0.6 s
Cholesky and 1 s syrk (ml-1m) stalled them (a step of 11 ms alone showed 1.2 s). The gram
is therefore scipy's sparse product (sparse_gram, which releases it), and the Cholesky
goes through the very same LAPACK routines scipy exports to Cython (scipy.linalg.
cython_lapack, a public API) as C function pointers in PyCapsules: called through ctypes,
which releases the GIL around a foreign call, they give the same bits. Where the capsules
cannot be read (another scipy build), the wrappers are used: the same result, with the GIL
held. Pure numpy and scipy: no other rec module.
"""

from __future__ import annotations

import ctypes

import numpy as np

EASE_LAMBDA = 500.0  # the EASE baseline's λ, `rec evaluate` shows it beside the tuned one

_INT = ctypes.POINTER(ctypes.c_int)
# void spotrf(char *uplo, int *n, float *a, int *lda, int *info), and spotri alike
_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_char_p, _INT, ctypes.c_void_p, _INT, _INT)
_ROUTINES: dict | None = None


def _routines() -> dict:
    """{"spotrf": fn, "spotri": fn} from scipy's Cython LAPACK capsules; {} when unreadable."""
    global _ROUTINES
    if _ROUTINES is None:
        try:
            from scipy.linalg import cython_lapack

            api = ctypes.pythonapi
            api.PyCapsule_GetName.restype = ctypes.c_char_p
            api.PyCapsule_GetName.argtypes = [ctypes.py_object]
            api.PyCapsule_GetPointer.restype = ctypes.c_void_p
            api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
            found = {}
            for name in ("spotrf", "spotri"):
                capsule = cython_lapack.__pyx_capi__[name]
                address = api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
                found[name] = _SIGNATURE(address)
            _ROUTINES = found
        except Exception:  # noqa: BLE001 (any failure: the wrappers below instead)
            _ROUTINES = {}
    return _ROUTINES


def binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """The binary matrix with a 1 at each (row, col) as scipy CSR: a pair given twice is
    a 1, not a 2. Built from the pairs (ml-1m's training matrix: 30 ms, where scipy's
    conversion of the dense matrix took 0.5 s)."""
    from scipy.sparse import csr_matrix

    x = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def sparse_gram(x) -> np.ndarray:
    """X'X (float32, C order, both triangles) of a binary scipy CSR matrix: the sparse
    product, made dense. Its work is the sum over users of their ratings squared (ml-1m:
    0.3e9 multiply-adds, 1 s on one core, as long as the dense syrk) and scipy runs it
    without holding the GIL, where BLAS through scipy's wrappers holds it for the whole
    call: `rec evaluate` fits this EASE in a thread beside the rank stage's two, which
    then wait for nothing. Counts, exact in float32: upper_gram's bits."""
    return np.asarray((x.T.tocsr() @ x).toarray(), np.float32)


def few_users(n_users: int, n_items: int) -> bool:
    """Whether EASE goes through the users' side (UserSideEase): at most half as many users
    as items, where its (items, users) float64 factor is at most the items² float32 gram's
    size; else the gram and a Cholesky inverse."""
    return 2 * n_users <= n_items


def ease_weights(x: np.ndarray, lam: float = EASE_LAMBDA) -> np.ndarray:
    """EASE's item-item matrix B (float32, zero diagonal) of a binary user x movie matrix:
    a user who is not in `x` (rated movies X_new) is scored X_new B, no refit. With few
    users (few_users), through their side (UserSideEase)."""
    if few_users(*x.shape):
        return UserSideEase(x).weights(lam)
    return ease_from_gram(upper_gram(x), lam, overwrite=True)


def upper_gram(x: np.ndarray) -> np.ndarray:
    """X'X (float32, Fortran order) with only its upper triangle filled, what the Cholesky
    of ease_from_gram reads: one BLAS syrk (half the multiply-adds of X'X, in scipy's
    BLAS, on every core), from x's transpose without a copy. A binary matrix's gram
    holds counts, exact in float32, so any way of forming it gives the same bits."""
    from scipy.linalg.blas import ssyrk

    return ssyrk(1.0, np.asarray(x, np.float32).T, trans=0, lower=0)


def ease_from_gram(g: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """EASE's B (float32, zero diagonal) from the gram matrix, by a Cholesky inverse, in
    place of `g` with overwrite=True (one n² matrix at the peak, beside g's). Only g's
    upper triangle is read (a full symmetric g, or upper_gram's)."""
    a = g if overwrite else g.copy()
    a[np.diag_indices_from(a)] += np.float32(lam)
    if not a.flags.f_contiguous:  # g is symmetric: its transpose is the same matrix, in
        a = a.T  # the Fortran order LAPACK works in (no copy of n² floats)
    p = cholesky_inverse(a)  # the upper triangle of P, without holding the GIL
    n = len(p)
    step = 1024
    for lo in range(0, n, step):  # potri fills the upper triangle only: mirror it, by blocks
        hi = min(lo + step, n)
        p[lo:hi, :lo] = p[:lo, lo:hi].T
        block = p[lo:hi, lo:hi]
        block[np.tril_indices(hi - lo, -1)] = block.T[np.tril_indices(hi - lo, -1)]
    if not p.flags.c_contiguous:  # LAPACK's (Fortran) order: P is symmetric, so its
        p = p.T  # transpose is the same matrix in C order, where a user's rows are contiguous
    scale = -1.0 / np.diag(p)
    p *= scale[None, :].astype(np.float32)
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32, copy=False)


def cholesky_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of the symmetric positive definite `a` (float32, Fortran order, only
    its upper triangle read), in place of `a`: its upper triangle holds the inverse's, the
    lower is left as it was. ValueError when `a` is not positive definite."""
    if not (a.dtype == np.float32 and a.flags.f_contiguous and a.ndim == 2
            and a.shape[0] == a.shape[1]):
        raise ValueError("cholesky_inverse needs a square float32 matrix in Fortran order")
    routines = _routines()
    if not routines:
        from scipy.linalg import lapack

        c, info = lapack.spotrf(a, lower=False, overwrite_a=True)
        _check(info, "the regularised gram matrix is not positive definite")
        p, info = lapack.spotri(c, lower=False, overwrite_c=True)
        _check(info, "the Cholesky inverse failed")
        if p is not a:
            a[...] = p
        return a
    n, lda, info = ctypes.c_int(len(a)), ctypes.c_int(max(1, len(a))), ctypes.c_int(0)
    pointer = a.ctypes.data_as(ctypes.c_void_p)
    routines["spotrf"](b"U", ctypes.byref(n), pointer, ctypes.byref(lda), ctypes.byref(info))
    _check(info.value, "the regularised gram matrix is not positive definite")
    routines["spotri"](b"U", ctypes.byref(n), pointer, ctypes.byref(lda), ctypes.byref(info))
    _check(info.value, "the Cholesky inverse failed")
    return a


def _check(info: int, what: str) -> None:
    if info != 0:
        raise ValueError(f"EASE: {what} ({info})")


class UserSideEase:
    """EASE of a binary matrix X with fewer rows (users) than columns (items), through the
    users' side: by Woodbury, P = (X'X + λI)^-1 = (I - M) / λ with M = X'(XX' + λI)^-1 X,
    and with XX' = U diag(s) U' (users², one eigendecomposition for every λ) and
    W = X'U, M = W diag(1 / (s + λ)) W'. Off the diagonal B = -P / diag(P) is then
    M_ij / (1 - M_jj). ml-latest-small (610 users, 9k movies): the users² eigensystem
    and a λ's scores in well under a second, where each λ's items³ Cholesky took 6 s.
    float64 throughout, B and the scores rounded to float32 at the end: the primal's
    matrix to float32 rounding (tests/test_serving_exact.py)."""

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, np.float64)
        s, u = np.linalg.eigh(x @ x.T)  # counts: exact in float64
        self.s = np.maximum(s, 0.0)  # a null direction's rounding below 0
        self.w = np.ascontiguousarray(x.T @ u)  # (items, users)

    def _parts(self, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(1 / (s + λ), diag(M), the columns' scale 1 / (1 - diag(M)))."""
        d = 1.0 / (self.s + lam)
        diag = np.square(self.w) @ d
        return d, diag, 1.0 / (1.0 - diag)

    def weights(self, lam: float, block: int = 1024) -> np.ndarray:
        """B (float32, items², C order, zero diagonal): ease_from_gram's matrix."""
        d, _, scale = self._parts(lam)
        wd = self.w * d
        n = len(self.w)
        b = np.empty((n, n), np.float32)
        for lo in range(0, n, block):  # a block of columns in float64 at a time
            b[:, lo:lo + block] = (wd @ self.w[lo:lo + block].T) * scale[lo:lo + block]
        b[np.diag_indices_from(b)] = 0.0
        return b

    def scores(self, x: np.ndarray, lam: float) -> np.ndarray:
        """x B (float32) for binary rows x over the same items, without B: ((x W) / (s + λ))
        W' scaled by column, less each rated item's own M_jj."""
        d, diag, scale = self._parts(lam)
        x = np.asarray(x, np.float64)
        out = ((x @ self.w) * d) @ self.w.T
        out -= x * diag
        out *= scale
        return out.astype(np.float32)
