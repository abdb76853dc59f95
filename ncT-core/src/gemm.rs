//! The one f64 matrix product of the batched kernels,
//! $C \leftarrow \alpha\,A B + \beta\,C$, on strided column-major views.
//!
//! Every dense layer, jet and VJP of the batched paths multiplies through [`gemm`], so the GEMM
//! library is chosen in one place. Operands are [`MatRef`]s: a transpose ([`MatRef::t`]) swaps the
//! strides instead of copying, and shapes of any size (also below nalgebra's small-matrix cut-off,
//! where it falls back to a loop of matrix-vector products) go to the blocked kernel.
//!
//! The library is faer (its AVX2/AVX-512 kernels) by default; matrixmultiply (nalgebra's own
//! GEMM) can be chosen with [`set_library`] to compare the two, shape by shape
//! (`cargo run --release --example bench_gemm`) and end to end
//! (`cargo run --release --example bench_compare -- --gemm matrixmultiply`); see the README's
//! Performance section. After each faer call the upper vector state is cleared (`vzeroupper`),
//! without which the scalar code around the products (any libm call, e.g. `exp`) runs several times
//! slower on Intel cores. Sequential on purpose: the batched paths parallelise over chunks of
//! walkers and samples, and one GEMM per thread keeps results independent of the thread count.

use nalgebra::{DMatrix, DMatrixView};
use std::sync::atomic::{AtomicU8, Ordering};

/// A read-only strided matrix view (`rows x cols`, element $(i, j)$ at `i * rs + j * cs`).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f64],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A column-major `rows x cols` matrix in `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows * cols`.
    pub fn col_major(data: &'a [f64], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "gemm operand: {} numbers for a {rows} x {cols} matrix", data.len());
        Self { data, rows, cols, rs: 1, cs: rows.max(1) }
    }
    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
}

impl<'a> From<&'a DMatrix<f64>> for MatRef<'a> {
    fn from(m: &'a DMatrix<f64>) -> Self {
        Self::col_major(m.as_slice(), m.nrows(), m.ncols())
    }
}

impl<'a> From<DMatrixView<'a, f64>> for MatRef<'a> {
    /// # Panics
    /// If the view is not column-major contiguous within its columns (row stride 1).
    fn from(m: DMatrixView<'a, f64>) -> Self {
        let (rs, cs) = m.strides();
        assert_eq!(rs, 1, "gemm operand views must have unit row stride");
        let len = if m.ncols() == 0 { 0 } else { (m.ncols() - 1) * cs + m.nrows() };
        // SAFETY: the view borrows `len` elements from its start with these strides.
        let data = unsafe { std::slice::from_raw_parts(m.as_ptr(), len) };
        Self { data, rows: m.nrows(), cols: m.ncols(), rs, cs: cs.max(1) }
    }
}

/// $C \leftarrow \alpha A B + \beta C$ for a column-major `c` (`beta = 0` overwrites, never reads).
///
/// # Panics
/// If the shapes do not agree.
pub fn gemm(c: &mut [f64], c_rows: usize, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, beta: f64) {
    gemm_with(library(), c, c_rows, alpha, a, b, beta)
}

/// [`gemm`] by a given library, whatever [`set_library`] chose.
pub fn gemm_with(lib: GemmLibrary, c: &mut [f64], c_rows: usize, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, beta: f64) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions {k} and {} differ", b.rows);
    assert_eq!(c_rows, m, "gemm: C has {c_rows} rows, A has {m}");
    assert!(c.len() >= m * n, "gemm: C holds {} numbers, needs {m} x {n}", c.len());
    let c = &mut c[..m * n];
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if beta == 0.0 {
            c.fill(0.0);
        } else {
            c.iter_mut().for_each(|v| *v *= beta);
        }
        return;
    }
    if beta != 0.0 && beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
    // SAFETY: `c` holds the m x n entries of C (checked above).
    unsafe { product(lib, c.as_mut_ptr(), alpha, a, b, beta != 0.0) }
}

/// `C (+)= alpha A B` into the column-major `m x n` block at `c` (`m = a.rows`, `n = b.cols`,
/// `k = a.cols = b.rows > 0`). Without `accumulate` C is only written, never read.
///
/// # Safety
/// `c` must be valid for writes (and, with `accumulate`, reads) of `m * n` consecutive f64.
unsafe fn product(lib: GemmLibrary, c: *mut f64, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match lib {
            GemmLibrary::Faer => faer_gemm(c, alpha, a, b, accumulate),
            GemmLibrary::MatrixMultiply => matrixmultiply_gemm(c, alpha, a, b, accumulate),
        }
    }
}

/// The GEMM implementations [`gemm`] can dispatch to (see [`set_library`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmLibrary {
    /// faer's x86 micro-kernels (the default).
    Faer,
    /// matrixmultiply (nalgebra's own GEMM).
    MatrixMultiply,
}

static LIBRARY: AtomicU8 = AtomicU8::new(0);

/// Chooses the library behind every [`gemm`] of the process (for benchmarks; both give the same
/// products up to rounding, so results may change in the last digits when switching).
pub fn set_library(lib: GemmLibrary) {
    LIBRARY.store(lib as u8, Ordering::Relaxed);
}

/// The library [`gemm`] uses now.
pub fn library() -> GemmLibrary {
    match LIBRARY.load(Ordering::Relaxed) {
        0 => GemmLibrary::Faer,
        _ => GemmLibrary::MatrixMultiply,
    }
}

/// `C (+)= alpha A B` by faer; `c` is `a.rows x b.cols`, column-major.
unsafe fn faer_gemm(c: *mut f64, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // SAFETY: the operands' extents were checked at construction (`col_major`, views) and C's by
    // the caller; faer reads A and B within rows x cols at their strides and writes C's m x n entries.
    unsafe {
        let a = faer::MatRef::from_raw_parts(a.data.as_ptr(), m, k, a.rs as isize, a.cs as isize);
        let b = faer::MatRef::from_raw_parts(b.data.as_ptr(), k, n, b.rs as isize, b.cs as isize);
        let cm = faer::MatMut::from_raw_parts_mut(c, m, n, 1, m as isize);
        let accum = if accumulate { faer::Accum::Add } else { faer::Accum::Replace };
        faer::linalg::matmul::matmul(cm, accum, a, b, alpha, faer::Par::Seq);
    }
    clear_upper_vector_state();
}

/// `vzeroupper` after faer's AVX-512 kernels: they return with the upper vector state dirty, and
/// every later legacy-SSE instruction (scalar f64 code, libm's `exp`) then pays a transition
/// penalty on Intel cores (measured: `exp` at 41 % of the classical step instead of 1.4 %).
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn zeroupper() {
            std::arch::x86_64::_mm256_zeroupper();
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX (checked above).
            unsafe { zeroupper() }
        }
    }
}

/// `C (+)= alpha A B` by matrixmultiply; `c` is `a.rows x b.cols`, column-major.
unsafe fn matrixmultiply_gemm(c: *mut f64, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: as for faer; with beta = 0 matrixmultiply does not read C.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c,
            1,
            m as isize,
        );
    }
}

/// [`gemm`] into an owned matrix.
pub fn gemm_into(c: &mut DMatrix<f64>, alpha: f64, a: MatRef<'_>, b: MatRef<'_>, beta: f64) {
    let rows = c.nrows();
    assert_eq!(c.ncols(), b.cols, "gemm: C has {} columns, B has {}", c.ncols(), b.cols);
    gemm(c.as_mut_slice(), rows, alpha, a, b, beta)
}

/// $A B$ as a new matrix.
pub fn matmul(a: MatRef<'_>, b: MatRef<'_>) -> DMatrix<f64> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions {k} and {} differ", b.rows);
    if m * n == 0 || k == 0 {
        return DMatrix::zeros(m, n);
    }
    // The product overwrites every entry, so C is not zeroed first (a memset of every jet and
    // cotangent matrix otherwise).
    let mut data = Vec::<f64>::with_capacity(m * n);
    // SAFETY: `data` has room for the m x n entries, which `product` writes without reading
    // (accumulate = false) before the length is set.
    unsafe {
        product(library(), data.as_mut_ptr(), 1.0, a, b, false);
        data.set_len(m * n);
    }
    DMatrix::from_vec(m, n, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
        DMatrix::from_fn(a.nrows(), b.ncols(), |i, j| (0..a.ncols()).map(|k| a[(i, k)] * b[(k, j)]).sum())
    }

    #[test]
    fn products_with_transposes_views_and_accumulation_match_the_triple_loop() {
        for &(m, k, n) in &[(1, 1, 1), (3, 2, 5), (12, 128, 448), (64, 7, 33), (5, 0, 4), (130, 65, 9)] {
            let a = DMatrix::from_fn(m, k, |i, j| ((i * 31 + j * 17) as f64 * 0.13).sin());
            let b = DMatrix::from_fn(k, n, |i, j| ((i * 7 + j * 11) as f64 * 0.29).cos());
            let at = a.transpose();
            let bt = b.transpose();
            let want = naive(&a, &b);
            let tol = 1e-13 * (k as f64 + 1.0);
            for (ar, br) in [(MatRef::from(&a), MatRef::from(&b)), (MatRef::from(&at).t(), MatRef::from(&bt).t()), (MatRef::from(&a), MatRef::from(&bt).t())] {
                let got = matmul(ar, br);
                assert!((&got - &want).amax() <= tol, "{m}x{k}x{n}: {}", (&got - &want).amax());
                for lib in [GemmLibrary::Faer, GemmLibrary::MatrixMultiply] {
                    // C <- 2 A B - 0.5 C, and C <- A B + C
                    let c0 = DMatrix::from_fn(m, n, |i, j| (i + 2 * j) as f64);
                    let mut c = c0.clone();
                    gemm_with(lib, c.as_mut_slice(), m, 2.0, ar, br, -0.5);
                    assert!((&c - (&want * 2.0 - &c0 * 0.5)).amax() <= 2.0 * tol + 1e-13, "{lib:?} {m}x{k}x{n}");
                    let mut c = c0.clone();
                    gemm_with(lib, c.as_mut_slice(), m, 1.0, ar, br, 1.0);
                    assert!((&c - (&want + &c0)).amax() <= tol + 1e-13, "{lib:?} {m}x{k}x{n}");
                }
            }
            // A column block of a larger matrix as an operand view, C a contiguous view; with
            // beta = 0 the NaNs in C must not leak into the product.
            let big = DMatrix::from_fn(m, k + 3, |i, j| if (1..=k).contains(&j) { a[(i, j - 1)] } else { f64::NAN });
            let view = big.columns(1, k);
            for lib in [GemmLibrary::Faer, GemmLibrary::MatrixMultiply] {
                let mut out = vec![f64::NAN; m * n + 2];
                gemm_with(lib, &mut out, m, 1.0, MatRef::from(view), MatRef::from(&b), 0.0);
                let got = DMatrix::from_column_slice(m, n, &out[..m * n]);
                assert!((&got - &want).amax() <= tol, "{lib:?} {m}x{k}x{n}");
                assert!(out[m * n].is_nan(), "gemm must not write past C");
            }
        }
    }

    #[test]
    #[should_panic(expected = "inner dimensions")]
    fn mismatched_shapes_are_refused() {
        let a = DMatrix::<f64>::zeros(3, 4);
        let b = DMatrix::<f64>::zeros(5, 2);
        let _ = matmul(MatRef::from(&a), MatRef::from(&b));
    }
}
