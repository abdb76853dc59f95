//! A compact, exact binary encoding for the per-chunk results that ranks exchange.
//!
//! Floating-point numbers travel as their bit patterns (so a gathered result is bitwise the one
//! the other rank computed), lengths as `u64`, all little-endian. Both ends run the same binary,
//! so there is no schema; a decoding failure means mismatched binaries and aborts the job.

use crate::dim::{Size, Vector};
use crate::layer::PhasePoint;
use nalgebra::DMatrix;
use thiserror::Error;

/// A result that cannot be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("input ends after {have} of {need} bytes")]
    Short { need: usize, have: usize },
    #[error("{what} {value} is out of range")]
    Invalid { what: &'static str, value: u64 },
}

/// Encoding of a value exchanged between ranks.
pub trait Wire: Sized {
    /// Append the encoding of `self` to `out`.
    fn put(&self, out: &mut Vec<u8>);
    /// Decode one value from the front of `input`, advancing it.
    fn take(input: &mut &[u8]) -> Result<Self, WireError>;
}

fn take_bytes<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if input.len() < n {
        return Err(WireError::Short { need: n, have: input.len() });
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

macro_rules! wire_number {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(input: &mut &[u8]) -> Result<Self, WireError> {
                let b = take_bytes(input, std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(b.try_into().expect("length checked")))
            }
        }
    )*};
}
wire_number!(f64, f32, u64, u32, u8, i64, i32);

fn put_len(n: usize, out: &mut Vec<u8>) {
    (n as u64).put(out);
}

fn take_len(input: &mut &[u8]) -> Result<usize, WireError> {
    let n = u64::take(input)?;
    // Every element takes at least one byte, so a longer length cannot be real.
    if n > input.len() as u64 {
        return Err(WireError::Invalid { what: "length", value: n });
    }
    Ok(n as usize)
}

impl Wire for usize {
    fn put(&self, out: &mut Vec<u8>) {
        (*self as u64).put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let v = u64::take(input)?;
        usize::try_from(v).map_err(|_| WireError::Invalid { what: "usize", value: v })
    }
}

impl Wire for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        match u8::take(input)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(WireError::Invalid { what: "bool", value: v as u64 }),
        }
    }
}

impl Wire for () {
    fn put(&self, _: &mut Vec<u8>) {}
    fn take(_: &mut &[u8]) -> Result<Self, WireError> {
        Ok(())
    }
}

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        out.extend_from_slice(self.as_bytes());
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let n = take_len(input)?;
        let b = take_bytes(input, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::Invalid { what: "UTF-8 string of length", value: n as u64 })
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.len(), out);
        for t in self {
            t.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let n = usize::take(input)?;
        // Zero-sized elements (`()`) take no bytes, so the length is bounded by the input only
        // for elements that do; reserve at most what the input can hold.
        let mut v = Vec::with_capacity(n.min(input.len()));
        for _ in 0..n {
            v.push(T::take(input)?);
        }
        Ok(v)
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.is_some().put(out);
        if let Some(t) = self {
            t.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        Ok(if bool::take(input)? { Some(T::take(input)?) } else { None })
    }
}

impl<T: Wire, E: Wire> Wire for Result<T, E> {
    fn put(&self, out: &mut Vec<u8>) {
        self.is_ok().put(out);
        match self {
            Ok(t) => t.put(out),
            Err(e) => e.put(out),
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        Ok(if bool::take(input)? { Ok(T::take(input)?) } else { Err(E::take(input)?) })
    }
}

macro_rules! wire_tuple {
    ($($n:ident),+) => {
        impl<$($n: Wire),+> Wire for ($($n,)+) {
            #[allow(non_snake_case)]
            fn put(&self, out: &mut Vec<u8>) {
                let ($($n,)+) = self;
                $($n.put(out);)+
            }
            fn take(input: &mut &[u8]) -> Result<Self, WireError> {
                Ok(($($n::take(input)?,)+))
            }
        }
    };
}
wire_tuple!(A);
wire_tuple!(A, B);
wire_tuple!(A, B, C);
wire_tuple!(A, B, C, D);
wire_tuple!(A, B, C, D, E);
wire_tuple!(A, B, C, D, E, F);

impl<T: Wire, const K: usize> Wire for [T; K] {
    fn put(&self, out: &mut Vec<u8>) {
        for t in self {
            t.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let v: Vec<T> = (0..K).map(|_| T::take(input)).collect::<Result<_, _>>()?;
        Ok(v.try_into().unwrap_or_else(|_| unreachable!("K elements taken")))
    }
}

impl<N: Size> Wire for Vector<f64, N> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.as_slice().len(), out);
        for v in self.as_slice() {
            v.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let n = take_len(input)?;
        let dim = N::try_new(n).ok_or(WireError::Invalid { what: "vector length", value: n as u64 })?;
        let b = take_bytes(input, 8 * n)?;
        Ok(Vector::from_fn(dim, |i| f64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"))))
    }
}

impl<N: Size> Wire for PhasePoint<f64, N> {
    fn put(&self, out: &mut Vec<u8>) {
        self.q.put(out);
        self.p.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        Ok(PhasePoint::new(Vector::take(input)?, Vector::take(input)?))
    }
}

impl Wire for DMatrix<f64> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(self.nrows(), out);
        put_len(self.ncols(), out);
        for v in self.iter() {
            v.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let (r, c) = (usize::take(input)?, usize::take(input)?);
        let n = r.checked_mul(c).filter(|n| n.checked_mul(8).is_some_and(|b| b <= input.len())).ok_or(WireError::Invalid { what: "matrix size", value: r as u64 })?;
        let b = take_bytes(input, 8 * n)?;
        Ok(DMatrix::from_iterator(r, c, b.chunks_exact(8).map(|w| f64::from_le_bytes(w.try_into().expect("8 bytes")))))
    }
}

impl<const R: usize, const C: usize> Wire for nalgebra::SMatrix<f64, R, C> {
    fn put(&self, out: &mut Vec<u8>) {
        for v in self.iter() {
            v.put(out);
        }
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        let b = take_bytes(input, 8 * R * C)?;
        Ok(Self::from_iterator(b.chunks_exact(8).map(|w| f64::from_le_bytes(w.try_into().expect("8 bytes")))))
    }
}

impl Wire for nalgebra::Complex<f64> {
    fn put(&self, out: &mut Vec<u8>) {
        self.re.put(out);
        self.im.put(out);
    }
    fn take(input: &mut &[u8]) -> Result<Self, WireError> {
        Ok(nalgebra::Complex::new(f64::take(input)?, f64::take(input)?))
    }
}

/// `impl Wire` for a struct by its fields, in order: `wire_struct!(Walker<N: Size> { x, e, ok });`.
#[macro_export]
macro_rules! wire_struct {
    ($name:ident $(< $($g:ident : $b:path),* >)? { $($field:ident),* $(,)? }) => {
        impl $(< $($g: $b),* >)? $crate::parallel::Wire for $name $(< $($g),* >)? {
            fn put(&self, out: &mut Vec<u8>) {
                $($crate::parallel::Wire::put(&self.$field, out);)*
            }
            fn take(input: &mut &[u8]) -> Result<Self, $crate::parallel::WireError> {
                Ok(Self { $($field: $crate::parallel::Wire::take(input)?),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dim::{Const, Dyn};

    fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(v: T) {
        let mut b = Vec::new();
        v.put(&mut b);
        let mut s = &b[..];
        assert_eq!(T::take(&mut s).unwrap(), v);
        assert!(s.is_empty(), "all bytes consumed");
        for cut in 0..b.len() {
            let mut s = &b[..cut];
            assert!(T::take(&mut s).is_err() || cut == b.len(), "a truncated encoding ({cut} of {} bytes) is refused", b.len());
        }
    }

    #[test]
    fn values_round_trip_bitwise_and_truncations_are_refused() {
        round_trip(-0.0f64);
        round_trip((1.5f64, 7usize, true));
        round_trip(vec![f64::MIN_POSITIVE, 1e300, -3.25]);
        round_trip(Some(vec![(2u64, -1i64)]));
        round_trip::<Result<f64, String>>(Err("walker 3 fell into a hole".into()));
        round_trip::<Result<f64, String>>(Ok(2.0));
        round_trip(Vector::<f64, Dyn>::from_fn(Dyn(5), |i| i as f64 / 3.0));
        round_trip(PhasePoint::<f64, Const<2>>::new(Vector::from_fn(Const, |i| i as f64 + 0.5), Vector::from_fn(Const, |i| -(i as f64))));
        round_trip(DMatrix::from_fn(3, 2, |i, j| (i * 10 + j) as f64 + 0.25));
        round_trip(nalgebra::Matrix3::from_fn(|i, j| (i + 3 * j) as f64));
        round_trip([1.0f64, 2.0, 3.0]);
        // NaN payloads travel as bits.
        let mut b = Vec::new();
        f64::from_bits(0x7ff8_dead_beef_0001).put(&mut b);
        assert_eq!(f64::take(&mut &b[..]).unwrap().to_bits(), 0x7ff8_dead_beef_0001);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut b = Vec::new();
        u64::MAX.put(&mut b);
        assert!(matches!(Vec::<f64>::take(&mut &b[..]), Err(WireError::Short { .. })));
        assert!(matches!(Vector::<f64, Dyn>::take(&mut &b[..]), Err(WireError::Invalid { .. })));
        let mut s = &[2u8][..];
        assert_eq!(bool::take(&mut s), Err(WireError::Invalid { what: "bool", value: 2 }));
        let mut b = Vec::new();
        3usize.put(&mut b);
        b.extend_from_slice(&[0; 24]);
        assert!(matches!(Vector::<f64, Const<2>>::take(&mut &b[..]), Err(WireError::Invalid { what: "vector length", .. })));
    }
}
