//! The dense layers of the DeepPot-SE nets: the resnet layer rule, its reverse pass, the
//! embedding nets of one scalar input with their input derivative, and the products behind them.

use nct::Scalar;

/// How a layer adds its input back (the DeePMD resnet rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skip {
    None,
    Identity,
    /// $y \mathrel{+}= (x, x)$ when $d_{out} = 2 d_{in}$.
    Concat,
}

/// $y = t\odot\tanh(xW + b) + \mathrm{skip}(x)$, weights row-major $d_{in}\times d_{out}$, with the
/// transpose kept for the reverse pass.
#[derive(Clone, Debug)]
pub(super) struct Dense {
    pub(super) din: usize,
    pub(super) dout: usize,
    pub(super) w: Vec<f64>,
    pub(super) wt: Vec<f64>,
    pub(super) b: Vec<f64>,
    pub(super) idt: Option<Vec<f64>>,
    pub(super) skip: Skip,
}

impl Dense {
    pub(super) fn new(din: usize, dout: usize, w: Vec<f64>, b: Vec<f64>, idt: Option<Vec<f64>>, with_skip: bool) -> Self {
        let mut wt = vec![0.0; w.len()];
        for i in 0..din {
            for j in 0..dout {
                wt[j * din + i] = w[i * dout + j];
            }
        }
        // The reference tests d_in == d_out // 2 first, then d_in == d_out.
        let skip = if !with_skip {
            Skip::None
        } else if dout == 2 * din {
            Skip::Concat
        } else if din == dout {
            Skip::Identity
        } else {
            Skip::None
        };
        Dense { din, dout, w, wt, b, idt, skip }
    }

    /// Pre-activations $xW + b$ of `rows` inputs.
    pub(super) fn affine<D: Scalar>(&self, x: &[D], rows: usize) -> Vec<D> {
        let mut out = Vec::with_capacity(rows * self.dout);
        for _ in 0..rows {
            out.extend(self.b.iter().map(|&b| D::from(b)));
        }
        matmul_acc(x, rows, self.din, &self.w, self.dout, &mut out);
        out
    }

    /// Adds the skip of `x` to `y`.
    pub(super) fn add_skip<D: Scalar>(&self, x: &[D], rows: usize, y: &mut [D]) {
        add_skip_rows(self.skip, x, self.din, rows, y, self.dout);
    }

    /// Forward pass: returns $(y, a)$ with $a = \tanh(xW + b)$ kept for the reverse pass.
    pub(super) fn forward<D: Scalar>(&self, x: &[D], rows: usize) -> (Vec<D>, Vec<D>) {
        let a: Vec<D> = self.affine(x, rows).into_iter().map(tanh).collect();
        let mut y = match &self.idt {
            Some(t) => a.iter().enumerate().map(|(k, &v)| v * t[k % self.dout]).collect(),
            None => a.clone(),
        };
        self.add_skip(x, rows, &mut y);
        (y, a)
    }

    /// Reverse pass: $\bar x$ from $\bar y$ and the stored activations.
    pub(super) fn backward<D: Scalar>(&self, a: &[D], ybar: &[D], rows: usize) -> Vec<D> {
        let zbar: Vec<D> = (0..rows * self.dout)
            .map(|k| {
                let t = self.idt.as_ref().map_or(1.0, |t| t[k % self.dout]);
                ybar[k] * (D::one() - a[k] * a[k]) * t
            })
            .collect();
        let mut xbar = vec![D::zero(); rows * self.din];
        matmul_acc(&zbar, rows, self.dout, &self.wt, self.din, &mut xbar);
        // The transpose of the skip: x-bar gets y-bar, or both halves of y-bar.
        match self.skip {
            Skip::None => {}
            Skip::Identity => xbar.iter_mut().zip(ybar).for_each(|(a, &b)| *a += b),
            Skip::Concat => {
                let (din, dout) = (self.din, self.dout);
                for r in 0..rows {
                    let yr = &ybar[r * dout..(r + 1) * dout];
                    xbar[r * din..(r + 1) * din].iter_mut().zip(yr[..din].iter().zip(&yr[din..])).for_each(|(a, (&u, &v))| *a += u + v);
                }
            }
        }
        xbar
    }
}

/// $\tanh$ that stays finite on dual numbers far in the tails (num-dual's tanh overflows there):
/// beyond $|z| = 20$, $\operatorname{sign}(z)(1 - u)/(1 + u)$ with $u = e^{-2|z|}$. For `f64` both
/// branches round to the same value there.
pub(super) fn tanh<D: Scalar>(z: D) -> D {
    let r = z.re();
    if r.abs() < 20.0 {
        z.tanh()
    } else if r > 0.0 {
        let u = (z * -2.0).exp();
        (-u + 1.0) / (u + 1.0)
    } else {
        let u = (z * 2.0).exp();
        (u - 1.0) / (u + 1.0)
    }
}

/// `out += x · w` for `rows` rows (`x`: rows × din, `w`: din × dout, both row-major). Rows go in
/// blocks of 32 with the weight row outside, so a large `w` (the 1296 × 240 fitting layer) is read
/// once per block; the inner loop is an axpy over a contiguous row of `w`, which vectorises for `f64`.
pub(super) fn matmul_acc<D: Scalar>(x: &[D], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [D]) {
    if std::any::TypeId::of::<D>() == std::any::TypeId::of::<f64>() {
        // SAFETY: D is f64 (same type, so same layout); the slices are reinterpreted unchanged.
        let (x, out) = unsafe { (std::slice::from_raw_parts(x.as_ptr() as *const f64, x.len()), std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut f64, out.len())) };
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            unsafe { matmul_f64_avx2(x, rows, din, w, dout, out) };
            return;
        }
        matmul_blocks(x, rows, din, w, dout, out);
        return;
    }
    matmul_blocks(x, rows, din, w, dout, out);
}

/// [`matmul_blocks`] for `f64` compiled with AVX2 (wider vectors; no fused multiply-add, so the
/// result is bitwise that of the generic loop).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matmul_f64_avx2(x: &[f64], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [f64]) {
    matmul_blocks(x, rows, din, w, dout, out)
}

#[inline(always)]
pub(super) fn matmul_blocks<D: Scalar>(x: &[D], rows: usize, din: usize, w: &[f64], dout: usize, out: &mut [D]) {
    const BLOCK: usize = 32;
    for r0 in (0..rows).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(rows);
        for k in 0..din {
            let wk = &w[k * dout..(k + 1) * dout];
            for r in r0..r1 {
                let xk = x[r * din + k];
                for (oj, &wj) in out[r * dout..(r + 1) * dout].iter_mut().zip(wk) {
                    *oj += xk * wj;
                }
            }
        }
    }
}

/// `y += skip(x)` row by row: nothing, `x`, or `(x, x)`.
pub(super) fn add_skip_rows<D: Scalar>(skip: Skip, x: &[D], din: usize, rows: usize, y: &mut [D], dout: usize) {
    match skip {
        Skip::None => {}
        Skip::Identity => y.iter_mut().zip(x).for_each(|(a, &b)| *a += b),
        Skip::Concat => {
            for r in 0..rows {
                let xr = &x[r * din..(r + 1) * din];
                let (lo, hi) = y[r * dout..(r + 1) * dout].split_at_mut(din);
                lo.iter_mut().zip(xr).for_each(|(a, &b)| *a += b);
                hi.iter_mut().zip(xr).for_each(|(a, &b)| *a += b);
            }
        }
    }
}

/// A net of one scalar input, evaluated with its derivative with respect to that input (a
/// forward tangent: the embedding nets need $\mathcal N(x)$ and $\mathcal N'(x)$).
#[derive(Clone, Debug)]
pub(super) struct EmbeddingNet {
    pub(super) layers: Vec<Dense>,
}

impl EmbeddingNet {
    pub(super) fn width(&self) -> usize {
        self.layers.last().map_or(1, |l| l.dout)
    }
    /// $\mathcal N(x)$ for every input (rows × width).
    pub(super) fn value<D: Scalar>(&self, x: &[D]) -> Vec<D> {
        let rows = x.len();
        let mut h = x.to_vec();
        for l in &self.layers {
            h = l.forward(&h, rows).0;
        }
        h
    }
    /// $(\mathcal N(x), \mathcal N'(x))$ for every input, rows × width each.
    pub(super) fn eval<D: Scalar>(&self, x: &[D]) -> (Vec<D>, Vec<D>) {
        let rows = x.len();
        let mut h = x.to_vec();
        let mut dh = vec![D::one(); rows];
        for l in &self.layers {
            let a: Vec<D> = l.affine(&h, rows).into_iter().map(tanh).collect();
            let mut dz = vec![D::zero(); rows * l.dout];
            matmul_acc(&dh, rows, l.din, &l.w, l.dout, &mut dz);
            let mut y = a.clone();
            let mut dy: Vec<D> = dz.iter().zip(&a).map(|(&d, &v)| d * (D::one() - v * v)).collect();
            l.add_skip(&h, rows, &mut y);
            l.add_skip(&dh, rows, &mut dy);
            h = y;
            dh = dy;
        }
        (h, dh)
    }
}
