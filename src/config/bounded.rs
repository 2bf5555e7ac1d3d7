//! Numbers and durations that must lie in a range, checked while the file is read: the schema
//! states the range at the field (`weight: Bounded<u32, 1, 100>`), and code that uses the value
//! knows it holds. A duration's bounds are in milliseconds.

use super::duration::Span;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Deref;

/// What a bound is compared with, and how a bound is written in a message.
pub trait Measure: Copy {
    fn measure(self) -> u64;
    fn show(n: u64) -> String;
}

macro_rules! integer_measure {
    ($($t:ty),*) => {$(
        impl Measure for $t {
            fn measure(self) -> u64 {
                u64::try_from(self).unwrap_or(u64::MAX)
            }
            fn show(n: u64) -> String {
                n.to_string()
            }
        }
    )*};
}

integer_measure!(u8, u32, u64, usize);

impl Measure for Span {
    fn measure(self) -> u64 {
        u64::try_from(self.get().as_millis()).unwrap_or(u64::MAX)
    }
    fn show(n: u64) -> String {
        Span::millis(n).to_string()
    }
}

/// A value from `MIN` to `MAX` inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<T, const MIN: u64, const MAX: u64>(T);

/// A duration longer than zero (a timeout, an interval, a lifetime).
pub type Positive = Bounded<Span, 1, { u64::MAX }>;

impl<T: Measure, const MIN: u64, const MAX: u64> Bounded<T, MIN, MAX> {
    pub fn new(value: T) -> Result<Self, String> {
        let n = value.measure();
        if (MIN..=MAX).contains(&n) {
            return Ok(Bounded(value));
        }
        let got = T::show(n);
        Err(match (MIN, MAX) {
            (1, u64::MAX) => format!("must be greater than zero (got {got})"),
            (min, u64::MAX) => format!("must be at least {} (got {got})", T::show(min)),
            (min, max) => format!(
                "must be between {} and {} (got {got})",
                T::show(min),
                T::show(max)
            ),
        })
    }

    /// A default of the schema. Unchecked so that defaults can be written as constants;
    /// `every_default_is_within_its_bounds` reads all of them back through `new`.
    pub(super) const fn preset(value: T) -> Self {
        Bounded(value)
    }
}

impl<T, const MIN: u64, const MAX: u64> Deref for Bounded<T, MIN, MAX> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Display, const MIN: u64, const MAX: u64> fmt::Display for Bounded<T, MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de, T, const MIN: u64, const MAX: u64> Deserialize<'de> for Bounded<T, MIN, MAX>
where
    T: Measure + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(T::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<T: Serialize, const MIN: u64, const MAX: u64> Serialize for Bounded<T, MIN, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_says_what_it_wants() {
        assert_eq!(*Bounded::<u32, 1, 100>::new(100).unwrap(), 100);
        assert_eq!(
            Bounded::<u32, 1, 100>::new(101).unwrap_err(),
            "must be between 1 and 100 (got 101)"
        );
        assert_eq!(
            Positive::new(Span::secs(0)).unwrap_err(),
            "must be greater than zero (got 0s)"
        );
        assert_eq!(
            Bounded::<Span, 5_000, { u64::MAX }>::new(Span::secs(4)).unwrap_err(),
            "must be at least 5s (got 4s)"
        );
        assert_eq!(
            Bounded::<Span, 1, 1_000>::new(Span::secs(2)).unwrap_err(),
            "must be between 1ms and 1s (got 2s)"
        );
        let parsed: Result<Bounded<u8, 1, 128>, _> = serde_yaml::from_str("129");
        assert!(parsed.unwrap_err().to_string().contains("got 129"));
    }
}
