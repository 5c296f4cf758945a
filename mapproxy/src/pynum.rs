//! Numbers as MapProxy holds them: a value written in the YAML as an integer stays a Python
//! `int` through the configuration (a coverage's or a `bbox_srs` entry's bbox, a grid's `res`
//! list or `min_res`, ...) until arithmetic makes it a float, and the templates print it with
//! `str()`: `0` for the int, `0.0` for the float. [`Num`] keeps which one it is, its
//! `Display` is Python's `str()`; [`Num::max`]/[`Num::min`] are Python's `max(a, b)`/`min(a, b)`
//! (the first argument on a tie, so `max(-180, -180.0)` is the int).

use std::fmt;

use crate::grid::Bbox;
use crate::source::py_float_repr;

/// A Python number: an `int` or a `float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

/// A bbox of [`Num`]s (MapProxy's bbox tuples, as the YAML wrote them).
pub type NumBbox = [Num; 4];

impl Num {
    /// The value.
    pub fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(v) => v,
        }
    }

    /// Python's `max(self, other)`: `other` only when it is greater.
    pub fn max(self, other: Num) -> Num {
        if other.f() > self.f() {
            other
        } else {
            self
        }
    }

    /// Python's `min(self, other)`: `other` only when it is smaller.
    pub fn min(self, other: Num) -> Num {
        if other.f() < self.f() {
            other
        } else {
            self
        }
    }
}

impl From<f64> for Num {
    fn from(v: f64) -> Num {
        Num::Float(v)
    }
}

impl fmt::Display for Num {
    /// Python's `str()`: `5` for an int, `5.0` for a float (`repr`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(v) => f.write_str(&py_float_repr(*v)),
        }
    }
}

/// A bbox of floats (what a transformation or `bbox_tuple` gives).
pub fn floats(b: Bbox) -> NumBbox {
    b.map(Num::Float)
}

/// The values of a [`NumBbox`].
pub fn values(b: NumBbox) -> Bbox {
    b.map(Num::f)
}

/// Python's `merge_bbox` (util/bbox.py:32-44): the min of the mins, the max of the maxes.
pub fn merge_bbox(a: NumBbox, b: NumBbox) -> NumBbox {
    [
        a[0].min(b[0]),
        a[1].min(b[1]),
        a[2].max(b[2]),
        a[3].max(b[3]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_python_prints_and_compares() {
        assert_eq!(Num::Int(-180).to_string(), "-180");
        assert_eq!(Num::Float(-180.0).to_string(), "-180.0");
        assert_eq!(Num::Float(0.5).to_string(), "0.5");
        // max(-180, -180.0) is -180, max(-180.0, -180) is -180.0
        assert_eq!(Num::Int(-180).max(Num::Float(-180.0)), Num::Int(-180));
        assert_eq!(Num::Float(-180.0).max(Num::Int(-180)), Num::Float(-180.0));
        assert_eq!(Num::Int(5).min(Num::Float(4.5)), Num::Float(4.5));
        assert_eq!(
            merge_bbox(
                [Num::Int(-10), Num::Int(20), Num::Int(0), Num::Int(30)],
                floats([30.0, -20.0, 90.0, 10.0])
            )
            .map(|n| n.to_string()),
            ["-10", "-20.0", "90.0", "30"]
        );
    }
}
