//! Built-in apps and composites.
pub mod urlmap;
