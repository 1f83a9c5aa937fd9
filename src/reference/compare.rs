//! How a result is held against the reference: the one validator of the integration tests and
//! of `hetconv selfcheck`. Each value must be finite and lie within its bound of the expected
//! one, which must be finite too: a NaN or an infinity on either side is a mismatch, and so is
//! a missing or an extra value.

use std::fmt;

/// `|got - want| <= atol + rtol * |want|`, value by value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The relative part.
    pub rtol: f64,
    /// The absolute part.
    pub atol: f64,
}

impl Tolerance {
    /// f32 GPU kernels against the f64 reference on values in [-1, 1) with short reductions (at
    /// most a few hundred terms): their rounding stays far below it.
    pub const F32_KERNEL: Tolerance = Tolerance {
        rtol: 1e-5,
        atol: 1e-5,
    };

    /// The absolute part scaled by the largest magnitude among `want` (at least 1), for
    /// reductions whose rounding grows with the size of the result.
    pub fn scaled(self, want: &[f64]) -> Self {
        let largest = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        Self {
            atol: self.atol * largest,
            ..self
        }
    }

    /// The bound of one expected value.
    pub fn bound(&self, want: f64) -> f64 {
        self.atol + self.rtol * want.abs()
    }

    /// Holds `got` against `want` (see [`check_bounds`]).
    pub fn check<T: Copy + Into<f64>>(&self, got: &[T], want: &[f64]) -> Result<(), Mismatches> {
        check_bounds(got, want, |_, w| self.bound(w))
    }
}

/// The bound on the error of a sum of `terms` products whose operands (|a|, |b| <= 1) were
/// rounded to f16 and whose products were summed in f32 in any order, where the reference
/// summed the operands' absolute products to `abs_sum` and computed `want`:
///
/// `(2u + u^2 + g) abs_sum + terms v + 2 v |want|`, with u = 2^-11 (f16's unit roundoff: each
/// operand's relative error), v = 2^-24 (f32's), g = terms v / (1 - terms v) (the f32 sum); the
/// term `terms v` covers operands in f16's subnormal range (below 2^-14 an operand's rounding
/// error is absolute, at most 2^-25, so each product's at most 2^-24), and `2 v |want|` one
/// more f32 rounding of the stored result and of a bias added to it. Where `abs_sum` is not
/// known, `terms` bounds it (every product is at most 1).
///
/// ```
/// use hetconv::reference::compare::f16_sum_bound;
/// // A sum of 80 products in [-1, 1): at most about 0.078 off.
/// let worst = f16_sum_bound(80.0, 80, 0.0);
/// assert!(worst > 0.078 && worst < 0.079);
/// ```
pub fn f16_sum_bound(abs_sum: f64, terms: usize, want: f64) -> f64 {
    let (u, v) = (2f64.powi(-11), 2f64.powi(-24));
    let kv = terms as f64 * v;
    (2.0 * u + u * u + kv / (1.0 - kv)) * abs_sum + kv + 2.0 * v * want.abs()
}

/// Holds `got` against `want`, value `i` within `bound(i, want[i])`.
pub fn check_bounds<T: Copy + Into<f64>>(
    got: &[T],
    want: &[f64],
    bound: impl Fn(usize, f64) -> f64,
) -> Result<(), Mismatches> {
    let mut outside = 0;
    let mut first = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g: f64 = g.into();
        let limit = bound(i, w);
        let error = (g - w).abs();
        let within = g.is_finite() && w.is_finite() && error <= limit;
        if !within {
            outside += 1;
            first.get_or_insert(Mismatch {
                index: i,
                got: g,
                want: w,
                bound: limit,
            });
        }
    }
    if outside == 0 && got.len() == want.len() {
        return Ok(());
    }
    Err(Mismatches {
        outside,
        got: got.len(),
        want: want.len(),
        first,
    })
}

/// One value outside its bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatch {
    /// Its index.
    pub index: usize,
    /// The value computed.
    pub got: f64,
    /// The reference's.
    pub want: f64,
    /// The most `|got - want|` may be.
    pub bound: f64,
}

/// What a check found wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mismatches {
    /// Values outside their bounds (and values where either side is not finite).
    pub outside: usize,
    /// Values computed.
    pub got: usize,
    /// Values expected.
    pub want: usize,
    /// The first value outside its bound.
    pub first: Option<Mismatch>,
}

impl Mismatches {
    /// Values wrong: those outside their bounds, and every one missing or extra.
    pub fn count(&self) -> usize {
        self.outside + self.got.abs_diff(self.want)
    }
}

impl fmt::Display for Mismatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} values outside their bounds",
            self.outside, self.want
        )?;
        if self.got != self.want {
            write!(f, ", {} values where {} were expected", self.got, self.want)?;
        }
        if let Some(m) = self.first {
            write!(
                f,
                "; first [{}]: got {}, want {} (|err| {:e} > {:e})",
                m.index,
                m.got,
                m.want,
                (m.got - m.want).abs(),
                m.bound
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinity_and_missing_values_are_mismatches() {
        let tol = Tolerance {
            rtol: 1e-4,
            atol: 1e-4,
        };
        let count = |got: &[f32], want: &[f64]| tol.check(got, want).err().map(|m| m.count());
        assert_eq!(count(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(count(&[f32::NAN, f32::NAN], &[1.0, 2.0]), Some(2));
        assert_eq!(count(&[f32::INFINITY, 2.0], &[1.0, 2.0]), Some(1));
        assert_eq!(count(&[1.0], &[1.0, 2.0]), Some(1));
        assert_eq!(count(&[1.0, 2.0, 3.0], &[1.0, 2.0]), Some(1));
        assert_eq!(count(&[1.1, 2.0], &[1.0, 2.0]), Some(1));
        // An expected infinity is no excuse either: its bound would be infinite.
        assert_eq!(count(&[f32::INFINITY], &[f64::INFINITY]), Some(1));
        assert_eq!(count(&[1.0], &[f64::INFINITY]), Some(1));
        assert_eq!(count(&[1.0], &[f64::NAN]), Some(1));
    }

    #[test]
    fn the_first_mismatch_is_named_with_its_bound() {
        let err = Tolerance::F32_KERNEL
            .check(&[0.5f32, 0.25, 9.0], &[0.5, 0.5, 9.5])
            .unwrap_err();
        assert_eq!(err.outside, 2);
        let first = err.first.unwrap();
        assert_eq!((first.index, first.got, first.want), (1, 0.25, 0.5));
        assert!((first.bound - (1e-5 + 1e-5 * 0.5)).abs() < 1e-18);
        assert!(err.to_string().contains("first [1]: got 0.25, want 0.5"));
    }

    #[test]
    fn the_f16_bound_grows_with_the_products_and_the_terms() {
        let u = 2f64.powi(-11);
        // One product of two operands rounded to f16 each: 2u + u^2 relative, plus the
        // subnormal term and the stored result's rounding.
        let one = f16_sum_bound(1.0, 1, 1.0);
        let v = 2f64.powi(-24);
        assert!((one - (2.0 * u + u * u + v / (1.0 - v) + v + 2.0 * v)).abs() < 1e-18);
        assert!(f16_sum_bound(2.0, 1, 1.0) > one);
        assert!(f16_sum_bound(1.0, 1000, 1.0) > one);
        // A product really rounded: operands just off f16 values, both rounded to f16.
        let a = 1.0 + u * 0.75;
        let rounded = f64::from(half::f16::from_f64(a).to_f32());
        assert!((rounded * rounded - a * a).abs() <= f16_sum_bound(a * a, 1, a * a));
    }
}
