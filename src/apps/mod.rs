//! Built-in apps and composites.
pub mod echo;
pub mod text;
pub mod urlmap;
