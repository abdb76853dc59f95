//! Dimensions known at compile time or at run time, one code path for both.
//!
//! Following nalgebra, a dimension is a type implementing [`Size`]: [`Const<N>`] (written in a
//! declaration, checked by the compiler, zero-sized) or [`Dyn`] (a value from data or the command
//! line). A [`Vector<T, N>`] stores its coordinates in an array `[T; N]` for `Const<N>` (on the
//! stack, `Copy`) and in a `Vec<T>` for `Dyn` (on the heap). Every layer, Hamiltonian, latent
//! distribution and sampler is generic over `N: Size`, so the same code serves
//! `Symplectic<8>` declarations and `--n 747` runs. Large runtime systems never put $D^2$ numbers
//! on the stack: coordinate derivatives are taken in blocks of at most [`MAX_BLOCK`] directions
//! (see [`crate::derivative`]).

use std::fmt;
use std::ops::{Add, AddAssign, Deref, DerefMut, Mul, Neg, Sub, SubAssign};

pub use nalgebra::{Const, Dyn};

/// The widest block of directions a dual number carries in the blocked coordinate derivatives.
pub const MAX_BLOCK: usize = 16;

/// A dimension: [`Const<N>`] (compile time) or [`Dyn`] (run time).
pub trait Size: Copy + fmt::Debug + PartialEq + Eq + Send + Sync + 'static {
    /// Storage of a vector of this dimension: `[T; N]` or `Vec<T>`.
    type Buf<T: Copy + Send + Sync>: AsRef<[T]> + AsMut<[T]> + Clone + Send + Sync;
    /// The compile-time value, `None` for a runtime dimension.
    const STATIC: Option<usize>;
    /// Number of coordinates.
    fn value(self) -> usize;
    /// This dimension type with `n` coordinates, if it can have that many (`Const<N>` only `N`).
    fn try_new(n: usize) -> Option<Self>;
    /// Storage filled by `f(i)`.
    fn buf_from_fn<T: Copy + Send + Sync>(self, f: impl FnMut(usize) -> T) -> Self::Buf<T>;
    /// The dimension of existing storage.
    fn of_buf<T: Copy + Send + Sync>(buf: &Self::Buf<T>) -> Self;
}

impl<const N: usize> Size for Const<N> {
    type Buf<T: Copy + Send + Sync> = [T; N];
    const STATIC: Option<usize> = Some(N);
    #[inline]
    fn value(self) -> usize {
        N
    }
    fn try_new(n: usize) -> Option<Self> {
        (n == N).then_some(Const)
    }
    #[inline]
    fn buf_from_fn<T: Copy + Send + Sync>(self, f: impl FnMut(usize) -> T) -> [T; N] {
        std::array::from_fn(f)
    }
    #[inline]
    fn of_buf<T: Copy + Send + Sync>(_: &[T; N]) -> Self {
        Const
    }
}

impl Size for Dyn {
    type Buf<T: Copy + Send + Sync> = Vec<T>;
    const STATIC: Option<usize> = None;
    #[inline]
    fn value(self) -> usize {
        self.0
    }
    fn try_new(n: usize) -> Option<Self> {
        Some(Dyn(n))
    }
    fn buf_from_fn<T: Copy + Send + Sync>(self, f: impl FnMut(usize) -> T) -> Vec<T> {
        (0..self.0).map(f).collect()
    }
    #[inline]
    fn of_buf<T: Copy + Send + Sync>(buf: &Vec<T>) -> Self {
        Dyn(buf.len())
    }
}

/// A coordinate vector of dimension `N` (array storage for `Const<N>`, heap for `Dyn`).
/// Dereferences to a slice, so indexing, `iter()` and `len()` work as for `[T]`.
pub struct Vector<T: Copy + Send + Sync, N: Size> {
    data: N::Buf<T>,
}

impl<T: Copy + Send + Sync, N: Size> Clone for Vector<T, N> {
    #[inline]
    fn clone(&self) -> Self {
        Self { data: self.data.clone() }
    }
}

impl<T: Copy + Send + Sync, const K: usize> Copy for Vector<T, Const<K>> {}

impl<T: Copy + Send + Sync, N: Size> Deref for Vector<T, N> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        self.data.as_ref()
    }
}

impl<T: Copy + Send + Sync, N: Size> DerefMut for Vector<T, N> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.data.as_mut()
    }
}

impl<T: Copy + Send + Sync + fmt::Debug, N: Size> fmt::Debug for Vector<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Send + Sync + PartialEq, N: Size> PartialEq for Vector<T, N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Copy + Send + Sync, N: Size> Vector<T, N> {
    /// `f(i)` for every coordinate.
    #[inline]
    pub fn from_fn(size: N, f: impl FnMut(usize) -> T) -> Self {
        Self { data: size.buf_from_fn(f) }
    }
    /// Every coordinate equal to `x`.
    #[inline]
    pub fn from_element(size: N, x: T) -> Self {
        Self::from_fn(size, |_| x)
    }
    /// The coordinates of `s`; `None` if its length is not a value of `N`.
    pub fn try_from_slice(s: &[T]) -> Option<Self> {
        let size = N::try_new(s.len())?;
        Some(Self::from_fn(size, |i| s[i]))
    }
    /// The dimension.
    #[inline]
    pub fn size(&self) -> N {
        N::of_buf(&self.data)
    }
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        self.data.as_ref()
    }
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data.as_mut()
    }
    /// `f` applied to every coordinate.
    #[inline]
    pub fn map<E: Copy + Send + Sync>(&self, mut f: impl FnMut(T) -> E) -> Vector<E, N> {
        let s = self.as_slice();
        Vector::from_fn(self.size(), |i| f(s[i]))
    }
    /// `f(a_i, b_i)` for every coordinate.
    #[inline]
    pub fn zip_map<U: Copy + Send + Sync, E: Copy + Send + Sync>(&self, other: &Vector<U, N>, mut f: impl FnMut(T, U) -> E) -> Vector<E, N> {
        let (a, b) = (self.as_slice(), other.as_slice());
        Vector::from_fn(self.size(), |i| f(a[i], b[i]))
    }
    /// The same coordinates in the other representation of the dimension (`Const` ⇄ `Dyn`);
    /// `None` if the length does not fit.
    pub fn resize<M: Size>(&self) -> Option<Vector<T, M>> {
        Vector::try_from_slice(self.as_slice())
    }
}

impl<T: Copy + Send + Sync + Add<Output = T> + Mul<Output = T> + num_traits::Zero, N: Size> Vector<T, N> {
    /// All zeros.
    #[inline]
    pub fn zeros(size: N) -> Self {
        Self::from_element(size, T::zero())
    }
    /// $\sum_i a_i b_i$.
    #[inline]
    pub fn dot(&self, other: &Self) -> T {
        self.iter().zip(other.iter()).fold(T::zero(), |s, (&a, &b)| s + a * b)
    }
    /// $\sum_i a_i^2$.
    #[inline]
    pub fn norm_squared(&self) -> T {
        self.dot(self)
    }
}

impl<N: Size> Vector<f64, N> {
    /// Euclidean norm.
    pub fn norm(&self) -> f64 {
        self.norm_squared().sqrt()
    }
    /// Absolute values.
    pub fn abs(&self) -> Self {
        self.map(f64::abs)
    }
    /// Largest coordinate (`-inf` for an empty vector).
    pub fn max(&self) -> f64 {
        self.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
    /// Largest absolute value (0 for an empty vector).
    pub fn amax(&self) -> f64 {
        self.iter().fold(0.0, |m, v| m.max(v.abs()))
    }
}

impl<T: Copy + Send + Sync, const K: usize> From<nalgebra::SVector<T, K>> for Vector<T, Const<K>> {
    fn from(v: nalgebra::SVector<T, K>) -> Self {
        Self { data: std::array::from_fn(|i| v[i]) }
    }
}

impl<T: Copy + Send + Sync + nalgebra::Scalar, const K: usize> From<Vector<T, Const<K>>> for nalgebra::SVector<T, K> {
    fn from(v: Vector<T, Const<K>>) -> Self {
        nalgebra::SVector::from_column_slice(v.as_slice())
    }
}

impl<T: Copy + Send + Sync, const K: usize> From<[T; K]> for Vector<T, Const<K>> {
    fn from(data: [T; K]) -> Self {
        Self { data }
    }
}

impl<T: Copy + Send + Sync> From<Vec<T>> for Vector<T, Dyn> {
    fn from(data: Vec<T>) -> Self {
        Self { data }
    }
}

macro_rules! elementwise {
    ($tr:ident, $f:ident, $atr:ident, $af:ident, $op:tt) => {
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $tr for Vector<T, N> {
            type Output = Vector<T, N>;
            #[inline]
            fn $f(self, rhs: Self) -> Self {
                self.zip_map(&rhs, |a, b| a $op b)
            }
        }
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $tr for &Vector<T, N> {
            type Output = Vector<T, N>;
            #[inline]
            fn $f(self, rhs: Self) -> Vector<T, N> {
                self.zip_map(rhs, |a, b| a $op b)
            }
        }
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $tr<Vector<T, N>> for &Vector<T, N> {
            type Output = Vector<T, N>;
            #[inline]
            fn $f(self, rhs: Vector<T, N>) -> Vector<T, N> {
                self.zip_map(&rhs, |a, b| a $op b)
            }
        }
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $tr<&Vector<T, N>> for Vector<T, N> {
            type Output = Vector<T, N>;
            #[inline]
            fn $f(self, rhs: &Vector<T, N>) -> Vector<T, N> {
                self.zip_map(rhs, |a, b| a $op b)
            }
        }
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $atr for Vector<T, N> {
            #[inline]
            fn $af(&mut self, rhs: Self) {
                for (a, &b) in self.iter_mut().zip(rhs.iter()) {
                    *a = *a $op b;
                }
            }
        }
        impl<T: Copy + Send + Sync + $tr<Output = T>, N: Size> $atr<&Vector<T, N>> for Vector<T, N> {
            #[inline]
            fn $af(&mut self, rhs: &Self) {
                for (a, &b) in self.iter_mut().zip(rhs.iter()) {
                    *a = *a $op b;
                }
            }
        }
    };
}
elementwise!(Add, add, AddAssign, add_assign, +);
elementwise!(Sub, sub, SubAssign, sub_assign, -);

impl<T: Copy + Send + Sync + Neg<Output = T>, N: Size> Neg for Vector<T, N> {
    type Output = Vector<T, N>;
    #[inline]
    fn neg(self) -> Self {
        self.map(|a| -a)
    }
}

impl<T: Copy + Send + Sync + Neg<Output = T>, N: Size> Neg for &Vector<T, N> {
    type Output = Vector<T, N>;
    #[inline]
    fn neg(self) -> Vector<T, N> {
        self.map(|a| -a)
    }
}

impl<T: Copy + Send + Sync + Mul<Output = T>, N: Size> Mul<T> for Vector<T, N> {
    type Output = Vector<T, N>;
    #[inline]
    fn mul(self, rhs: T) -> Self {
        self.map(|a| a * rhs)
    }
}

impl<T: Copy + Send + Sync + Mul<Output = T>, N: Size> Mul<T> for &Vector<T, N> {
    type Output = Vector<T, N>;
    #[inline]
    fn mul(self, rhs: T) -> Vector<T, N> {
        self.map(|a| a * rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_vectors_agree() {
        let a = Vector::<f64, Const<3>>::from_fn(Const, |i| i as f64 + 1.0);
        let b = Vector::<f64, Dyn>::from_fn(Dyn(3), |i| i as f64 + 1.0);
        assert_eq!(a.as_slice(), b.as_slice());
        assert_eq!((a + a).as_slice(), (&b + &b).as_slice());
        assert_eq!(a.dot(&a), b.dot(&b));
        assert_eq!(a.resize::<Dyn>().unwrap(), b);
        assert_eq!(b.resize::<Const<3>>().unwrap(), a);
        assert!(b.resize::<Const<4>>().is_none());
        assert_eq!(b.size(), Dyn(3));
        assert_eq!(std::mem::size_of::<Vector<f64, Const<3>>>(), 24);
    }
}
