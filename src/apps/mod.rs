//! Built-in apps and composites.
pub mod proxy;
pub mod static_files;
