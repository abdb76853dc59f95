//! Pointwise activation functions with derivatives expressed through their outputs.

use crate::scalar::Scalar;

/// Taylor coefficients of $\tanh x = \sum_n c_n x^{2n-1}$, $c_n = 2^{2n}(2^{2n}-1)B_{2n}/(2n)!$.
const TANH_SERIES: [f64; 12] = [
    1.0,
    -0.3333333333333333,
    0.13333333333333333,
    -0.05396825396825397,
    0.021869488536155203,
    -0.008863235529902197,
    0.003592128036572481,
    -0.0014558343870513183,
    0.000590027440945586,
    -0.00023912911424355248,
    9.691537956929451e-05,
    -3.927832388331683e-05,
];

/// $1/k!$, $k = 0..13$: the Taylor series of $e^r$, truncation below $5\cdot10^{-18}$ relative for
/// $|r| \le \ln 2 / 2$.
const EXP_SERIES: [f64; 14] = [
    1.0,
    1.0,
    0.5,
    0.16666666666666666,
    0.041666666666666664,
    0.008333333333333333,
    0.001388888888888889,
    0.0001984126984126984,
    2.48015873015873e-5,
    2.7557319223985893e-6,
    2.755731922398589e-7,
    2.505210838544172e-8,
    2.08767569878681e-9,
    1.6059043836821613e-10,
];

/// $\tanh x$ within a few ulp, several times cheaper than the libm call (which goes through
/// `expm1`), and without branches or calls so that slices of it vectorise ([`tanh_in_place`]):
/// the odd Taylor series to $x^{23}$ for $|x| < 0.3$ (truncation below $4\cdot10^{-16}$ relative),
/// $\operatorname{sign}(x)(1 - 2/(e^{2|x|} + 1))$ beyond, with $e^y = 2^n e^r$ ($n$ the nearest
/// integer to $y/\ln 2$, $r$ by the two-part $\ln 2$ of fdlibm, $e^r$ by its Taylor series) and
/// $|x|$ capped at 20, where $\tanh$ rounds to 1. Both branches are evaluated and one selected;
/// no fused multiply-adds, so every instruction set gives the same bits. NaN stays NaN.
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    let a = x.abs();
    // Series branch.
    let x2 = x * x;
    let mut s = TANH_SERIES[11];
    for &c in TANH_SERIES[..11].iter().rev() {
        s = s * x2 + c;
    }
    let small = s * x;
    // Exponential branch: e^{2a} for 0.3 <= a <= 20 (a > 20 or inf: 20; NaN stays NaN).
    const MAGIC: f64 = 6755399441055744.0; // 1.5 * 2^52: adding it rounds to an integer
    const LN2_HI: f64 = 0.6931471803691238; // fdlibm's ln2_hi, 6.93147180369123816490e-01
    const LN2_LO: f64 = 1.9082149292705877e-10; // fdlibm's ln2_lo, 1.90821492927058770002e-10
    let y = 2.0 * if a > 20.0 { 20.0 } else { a };
    let t = y * std::f64::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let mut p = EXP_SERIES[13];
    for &c in EXP_SERIES[..13].iter().rev() {
        p = p * r + c;
    }
    // 2^n from the integer in t's low mantissa bits (0 <= n <= 58 here).
    let two_n = f64::from_bits((t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(1023)) << 52);
    let large = (1.0 - 2.0 / (p * two_n + 1.0)).copysign(x);
    if a < 0.3 { small } else { large }
}

/// [`tanh_f64`] of every element, in place; on x86-64 with AVX-512 eight and with AVX2 four at a
/// time (same bits; the compiler clears the upper vector state on return).
pub fn tanh_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn wide512(xs: &mut [f64]) {
            xs.iter_mut().for_each(|x| *x = tanh_f64(*x));
        }
        #[target_feature(enable = "avx2")]
        unsafe fn wide256(xs: &mut [f64]) {
            xs.iter_mut().for_each(|x| *x = tanh_f64(*x));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            unsafe { wide512(xs) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked above).
            unsafe { wide256(xs) };
            return;
        }
    }
    xs.iter_mut().for_each(|x| *x = tanh_f64(*x));
}

/// Activation of the hidden layers of a [`DenseNet`](crate::dense::DenseNet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// $\tanh z$
    Tanh,
    /// $\ln(1 + e^z)$, computed stably.
    Softplus,
    /// $z$
    Identity,
}

impl Activation {
    #[inline]
    pub fn apply<D: Scalar>(self, z: D) -> D {
        match self {
            Activation::Tanh => z.tanh(),
            Activation::Softplus => {
                if z.re() > 0.0 {
                    z + (-z).exp().ln_1p()
                } else {
                    z.exp().ln_1p()
                }
            }
            Activation::Identity => z,
        }
    }
    /// $d a / d z$ written as a function of the output $a$:
    /// tanh: $1 - a^2$; softplus: $1 - e^{-a}$; identity: 1.
    #[inline]
    pub fn derivative_from_output<D: Scalar>(self, a: D) -> D {
        match self {
            Activation::Tanh => D::one() - a * a,
            Activation::Softplus => D::one() - (-a).exp(),
            Activation::Identity => D::one(),
        }
    }
    /// $d^2 a / d z^2$ as a function of the output $a$:
    /// tanh: $-2a(1-a^2)$; softplus: $(1-e^{-a})e^{-a}$; identity: 0.
    #[inline]
    pub fn second_derivative_from_output(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => -2.0 * a * (1.0 - a * a),
            Activation::Softplus => {
                let e = (-a).exp();
                (1.0 - e) * e
            }
            Activation::Identity => 0.0,
        }
    }
    /// [`Activation::apply_f64`] of every element, in place (tanh vectorised by [`tanh_in_place`]).
    pub fn apply_in_place(self, zs: &mut [f64]) {
        match self {
            Activation::Tanh => tanh_in_place(zs),
            Activation::Identity => {}
            _ => zs.iter_mut().for_each(|z| *z = self.apply_f64(*z)),
        }
    }
    /// [`Activation::apply`] in f64 for the batched (matrix) kernels, with tanh by [`tanh_f64`].
    #[inline]
    pub fn apply_f64(self, z: f64) -> f64 {
        match self {
            Activation::Tanh => tanh_f64(z),
            _ => self.apply(z),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
            Activation::Identity => "identity",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast tanh against libm over the whole range, both branches and the limits.
    #[test]
    fn fast_tanh_matches_libm_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for k in 0..200_001 {
            let x = -25.0 + 50.0 * k as f64 / 200_000.0;
            let (t, r) = (tanh_f64(x), x.tanh());
            if r != 0.0 {
                worst = worst.max((t - r).abs() / r.abs());
            }
        }
        for x in [1e-300, 1e-8, 0.2999999, 0.3, 0.3000001, 400.0, -800.0] {
            let (t, r) = (tanh_f64(x), x.tanh());
            worst = worst.max((t - r).abs() / r.abs());
        }
        assert!(worst < 2e-15, "largest relative deviation {worst:e}");
        // The slice version (vectorised where the CPU allows) gives the same bits.
        let xs: Vec<f64> = (0..10_001).map(|k| -30.0 + 60.0 * k as f64 / 10_000.0).chain([f64::NAN, f64::INFINITY, -0.0, 1e-300]).collect();
        let mut ys = xs.clone();
        tanh_in_place(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(y.to_bits(), tanh_f64(*x).to_bits(), "tanh_in_place({x})");
        }
        assert_eq!(tanh_f64(0.0), 0.0);
        assert!(tanh_f64(f64::NAN).is_nan());
        assert_eq!((tanh_f64(f64::INFINITY), tanh_f64(f64::NEG_INFINITY)), (1.0, -1.0));
    }
}
