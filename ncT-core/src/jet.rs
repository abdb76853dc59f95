//! Forward-Laplacian jet: a scalar carrying value, gradient and Laplacian,
//! $(u, \nabla u, \Delta u)$, propagated in one forward pass at $O(D)$ cost per operation
//! (instead of $D$ directional second-order passes). Rules:
//! $f(u)$: $(f, f'\nabla u, f'\Delta u + f''|\nabla u|^2)$;
//! $uv$: $(uv, u\nabla v + v\nabla u, u\Delta v + v\Delta u + 2\nabla u\cdot\nabla v)$.
//! It implements num-dual's `DualNum` (through num-dual's own macros), so every scalar-generic
//! layer and potential runs on it unchanged.

use nalgebra::allocator::Allocator;
use nalgebra::*;
use num_dual::{Derivative, DualNum, DualNumFloat, DualStruct};
#[allow(unused_imports)]
use num_dual::{chain_rule, first, forward_binop, impl_add_sub_rem, impl_assign_ops, impl_comparisons, impl_derivatives, impl_dual_struct, impl_float_const, impl_from_f, impl_from_primitive, impl_inv, impl_iterator, impl_neg, impl_num, impl_scalar_op, impl_signed, impl_zero_one, second, third, zeroth};
use num_traits::{FloatConst, FromPrimitive, Inv, Num, One, Signed, Zero};
use std::fmt;
use std::iter::{Product, Sum};
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Rem, RemAssign, Sub, SubAssign};

/// Value, gradient (a row of length `D`) and Laplacian of a function of `D` variables.
#[derive(Clone, Debug)]
pub struct Lap<T: Scalar, D: Dim>
where
    DefaultAllocator: Allocator<U1, D>,
{
    pub re: T,
    pub v1: Derivative<T, U1, D>,
    pub v2: T,
}

impl<T: Scalar + Copy, const N: usize> Copy for Lap<T, Const<N>> {}

/// Jet over `N` variables with f64 parts.
pub type LapJet<const N: usize> = Lap<f64, Const<N>>;

impl<T: DualNum, D: Dim> Lap<T, D>
where
    DefaultAllocator: Allocator<U1, D>,
{
    #[inline]
    pub fn new(re: T, v1: Derivative<T, U1, D>, v2: T) -> Self {
        Self { re, v1, v2 }
    }
    #[inline]
    pub fn from_re(re: T) -> Self {
        Self::new(re, Derivative::none(), T::zero())
    }
    fn dot(a: &Derivative<T, U1, D>, b: &Derivative<T, U1, D>) -> T {
        match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.iter().zip(y.iter()).fold(T::zero(), |s, (p, q)| s + p.clone() * q.clone()),
            _ => T::zero(),
        }
    }
    #[inline]
    fn chain_rule(&self, f0: T, f1: T, f2: T) -> Self {
        let g2 = Self::dot(&self.v1, &self.v1);
        Self::new(f0, &self.v1 * f1.clone(), self.v2.clone() * f1 + g2 * f2)
    }
}

impl<const N: usize> LapJet<N> {
    /// The independent variable `index` with value `x`: $(x, e_i, 0)$.
    pub fn variable(x: f64, index: usize) -> Self {
        Self::new(x, Derivative::derivative_generic(U1, Const::<N>, index), 0.0)
    }
    /// Gradient as a vector (zeros if the value does not depend on the variables).
    pub fn gradient(&self) -> SVector<f64, N> {
        self.v1.0.map_or_else(SVector::zeros, |g| g.transpose())
    }
}

impl<T: DualNum, D: Dim> Mul<&Lap<T, D>> for &Lap<T, D>
where
    DefaultAllocator: Allocator<U1, D>,
{
    type Output = Lap<T, D>;
    #[inline]
    fn mul(self, other: &Lap<T, D>) -> Lap<T, D> {
        let cross = Lap::dot(&self.v1, &other.v1);
        Lap::new(
            self.re.clone() * other.re.clone(),
            &other.v1 * self.re.clone() + &self.v1 * other.re.clone(),
            other.v2.clone() * self.re.clone() + self.v2.clone() * other.re.clone() + (cross.clone() + cross),
        )
    }
}

impl<T: DualNum, D: Dim> Div<&Lap<T, D>> for &Lap<T, D>
where
    DefaultAllocator: Allocator<U1, D>,
{
    type Output = Lap<T, D>;
    #[inline]
    fn div(self, other: &Lap<T, D>) -> Lap<T, D> {
        let rec = other.re.recip();
        let f1 = -rec.clone() * rec.clone();
        let f2 = -(f1.clone() + f1.clone()) * rec.clone();
        self * &other.chain_rule(rec, f1, f2)
    }
}

impl<T: DualNum, D: Dim> fmt::Display for Lap<T, D>
where
    DefaultAllocator: Allocator<U1, D>,
{
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.re)?;
        self.v1.fmt(f, "ε")?;
        write!(f, " + {}Δ", self.v2)
    }
}

num_dual::impl_second_derivatives!(Lap, [v1, v2], [D], [U1, D]);
num_dual::impl_dual!(Lap, [v1, v2], [D], [U1, D]);

/// Scalars as plain numbers ("lanes") for the GEMM fast paths of scalar-generic layers: `f64` has
/// one lane; [`LapJet<W>`] has $W + 2$: the value, the $W$ gradient components (zeros where the
/// derivative is absent) and the Laplacian. Any linear map acts lane by lane, so $y = Wx$ over
/// scalars is one f64 GEMM over their lanes. Other scalar types have no lanes (`None`): their
/// callers keep the generic loop.
pub mod lanes {
    use super::LapJet;
    use crate::scalar::Scalar;
    use nalgebra::SVector;
    use num_dual::Derivative;
    use std::any::TypeId;

    /// Runs `$body` with `$J` the `LapJet` width matching `$D`, if any.
    macro_rules! with_jet_width {
        ($D:ty, $J:ident => $body:expr, $otherwise:expr) => {{
            let id = TypeId::of::<$D>();
            if id == TypeId::of::<LapJet<1>>() { const $J: usize = 1; $body }
            else if id == TypeId::of::<LapJet<2>>() { const $J: usize = 2; $body }
            else if id == TypeId::of::<LapJet<3>>() { const $J: usize = 3; $body }
            else if id == TypeId::of::<LapJet<4>>() { const $J: usize = 4; $body }
            else if id == TypeId::of::<LapJet<6>>() { const $J: usize = 6; $body }
            else if id == TypeId::of::<LapJet<8>>() { const $J: usize = 8; $body }
            else if id == TypeId::of::<LapJet<12>>() { const $J: usize = 12; $body }
            else if id == TypeId::of::<LapJet<16>>() { const $J: usize = 16; $body }
            else { $otherwise }
        }};
    }

    /// Lanes of one `D`, or `None` if `D` has no lane view.
    pub fn count<D: Scalar>() -> Option<usize> {
        if TypeId::of::<D>() == TypeId::of::<f64>() {
            return Some(1);
        }
        with_jet_width!(D, J => Some(J + 2), None)
    }

    fn cast<D: 'static, T: 'static>(x: &[D]) -> &[T] {
        assert_eq!(TypeId::of::<D>(), TypeId::of::<T>());
        // SAFETY: `D` and `T` are the same type.
        unsafe { std::slice::from_raw_parts(x.as_ptr() as *const T, x.len()) }
    }

    fn cast_mut<D: 'static, T: 'static>(x: &mut [D]) -> &mut [T] {
        assert_eq!(TypeId::of::<D>(), TypeId::of::<T>());
        // SAFETY: `D` and `T` are the same type.
        unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut T, x.len()) }
    }

    /// Writes the lanes of `x` to `out` (`x.len() * count` numbers, each scalar's lanes
    /// contiguous). Panics if `D` has no lanes or `out` is too short.
    pub fn pack<D: Scalar>(x: &[D], out: &mut [f64]) {
        if TypeId::of::<D>() == TypeId::of::<f64>() {
            out[..x.len()].copy_from_slice(cast::<D, f64>(x));
            return;
        }
        with_jet_width!(D, J => {
            let l = J + 2;
            for (v, o) in cast::<D, LapJet<J>>(x).iter().zip(out.chunks_exact_mut(l)) {
                o[0] = v.re;
                match &v.v1.0 {
                    Some(g) => o[1..=J].copy_from_slice(g.as_slice()),
                    None => o[1..=J].fill(0.0),
                }
                o[J + 1] = v.v2;
            }
        }, panic!("lanes::pack: no lane view of this scalar type"))
    }

    /// Reads `out.len()` scalars from their lanes in `x` (the layout of [`pack`]).
    pub fn unpack<D: Scalar>(x: &[f64], out: &mut [D]) {
        if TypeId::of::<D>() == TypeId::of::<f64>() {
            let n = out.len();
            cast_mut::<D, f64>(out).copy_from_slice(&x[..n]);
            return;
        }
        with_jet_width!(D, J => {
            let l = J + 2;
            for (o, v) in cast_mut::<D, LapJet<J>>(out).iter_mut().zip(x.chunks_exact(l)) {
                *o = LapJet::<J>::new(v[0], Derivative::some(SVector::<f64, J>::from_column_slice(&v[1..=J]).transpose()), v[J + 1]);
            }
        }, panic!("lanes::unpack: no lane view of this scalar type"))
    }

    /// The lanes of the product of two scalars given by their lanes (`a`, `b`, `out` of one
    /// length: 1 for f64, $W + 2$ for a jet): $(ab, a\nabla b + b\nabla a, a\Delta b + b\Delta a +
    /// 2\nabla a\cdot\nabla b)$.
    pub fn mul(a: &[f64], b: &[f64], out: &mut [f64]) {
        let l = out.len();
        if l == 1 {
            out[0] = a[0] * b[0];
            return;
        }
        let w = l - 2;
        let (a0, b0) = (a[0], b[0]);
        let mut dot = 0.0;
        for k in 1..=w {
            dot += a[k] * b[k];
            out[k] = a[k] * b0 + a0 * b[k];
        }
        out[0] = a0 * b0;
        out[w + 1] = a[w + 1] * b0 + a0 * b[w + 1] + 2.0 * dot;
    }

    /// The lanes of $t = \tanh a$ and of $1 - t^2$ from the lanes of $a$ (one length for all
    /// three), by [`tanh_f64`](crate::activation::tanh_f64) instead of the libm call:
    /// $t = (f, f'\nabla a, f'\Delta a + f''|\nabla a|^2)$ with $f' = 1 - f^2$, $f'' = -2ff'$.
    pub fn tanh_and_slope(a: &[f64], t: &mut [f64], slope: &mut [f64]) {
        let l = a.len();
        let f = crate::activation::tanh_f64(a[0]);
        let f1 = 1.0 - f * f;
        t[0] = f;
        slope[0] = f1;
        if l == 1 {
            return;
        }
        let w = l - 2;
        let (mut g2, mut t2) = (0.0, 0.0);
        for k in 1..=w {
            g2 += a[k] * a[k];
            t[k] = f1 * a[k];
            t2 += t[k] * t[k];
            slope[k] = -2.0 * f * t[k];
        }
        t[w + 1] = f1 * a[w + 1] - 2.0 * f * f1 * g2;
        slope[w + 1] = -2.0 * (f * t[w + 1] + t2);
    }

    /// $\tanh x$ for any scalar: through [`tanh_and_slope`] for scalars with lanes, else the
    /// scalar's own `tanh`.
    pub fn tanh<D: Scalar>(x: D) -> D {
        match count::<D>() {
            Some(l) if l <= 18 => {
                let (mut a, mut t, mut s) = ([0.0; 18], [0.0; 18], [0.0; 18]);
                pack(&[x], &mut a[..l]);
                tanh_and_slope(&a[..l], &mut t[..l], &mut s[..l]);
                let mut out = [x];
                unpack(&t[..l], &mut out);
                out[0]
            }
            _ => x.tanh(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use num_dual::{Dual64, DualNum};

        #[test]
        fn round_trip_and_linearity() {
            assert_eq!(count::<f64>(), Some(1));
            assert_eq!(count::<LapJet<12>>(), Some(14));
            assert_eq!(count::<Dual64>(), None);
            let xs: Vec<LapJet<3>> = (0..4).map(|k| (LapJet::<3>::variable(0.3 + k as f64, k % 3) * 1.7).sin()).collect();
            let mut buf = vec![0.0; 4 * 5];
            pack(&xs, &mut buf);
            let mut back = vec![LapJet::<3>::from_re(0.0); 4];
            unpack(&buf, &mut back);
            for (a, b) in xs.iter().zip(&back) {
                assert_eq!((a.re, a.gradient(), a.v2), (b.re, b.gradient(), b.v2));
            }
            // A linear combination over lanes equals the jet arithmetic.
            let combo = xs[0] * 0.5 - xs[2] * 1.25;
            let lanes: Vec<f64> = (0..5).map(|l| 0.5 * buf[l] - 1.25 * buf[10 + l]).collect();
            let mut c = [LapJet::<3>::from_re(0.0)];
            unpack(&lanes, &mut c);
            assert!((c[0].re - combo.re).abs() < 1e-15 && (c[0].v2 - combo.v2).abs() < 1e-14 && (c[0].gradient() - combo.gradient()).norm() < 1e-15);
            // The product on lanes equals the jet product.
            let mut prod = [0.0; 5];
            mul(&buf[5..10], &buf[15..20], &mut prod);
            let mut p = [LapJet::<3>::from_re(0.0)];
            unpack(&prod, &mut p);
            let exact = xs[1] * xs[3];
            assert!((p[0].re - exact.re).abs() < 1e-15 && (p[0].v2 - exact.v2).abs() < 1e-14 && (p[0].gradient() - exact.gradient()).norm() < 1e-15);
            // tanh and 1 - tanh^2 on lanes equal the jet arithmetic.
            for x in &xs {
                let (t, e) = (tanh(*x), x.tanh());
                let one = LapJet::<3>::from_re(1.0);
                let (mut a, mut tl, mut sl) = ([0.0; 5], [0.0; 5], [0.0; 5]);
                pack(&[*x], &mut a);
                tanh_and_slope(&a, &mut tl, &mut sl);
                let mut s = [one];
                unpack(&sl, &mut s);
                let es = one - e * e;
                assert!((t.re - e.re).abs() < 1e-15 && (t.v2 - e.v2).abs() < 1e-14 && (t.gradient() - e.gradient()).norm() < 1e-15, "{t} vs {e}");
                assert!((s[0].re - es.re).abs() < 1e-15 && (s[0].v2 - es.v2).abs() < 1e-14 && (s[0].gradient() - es.gradient()).norm() < 1e-15, "{} vs {es}", s[0]);
            }
            assert!((tanh(0.7_f64) - 0.7_f64.tanh()).abs() < 1e-15);
            // A value without derivative packs as zeros.
            pack(&[LapJet::<3>::from_re(2.0)], &mut buf[..5]);
            assert_eq!(&buf[..5], &[2.0, 0.0, 0.0, 0.0, 0.0]);
        }
    }
}
