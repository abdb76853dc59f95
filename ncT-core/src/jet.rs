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
