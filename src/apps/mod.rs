//! Built-in apps and composites.
pub mod cascade;
pub mod proxy;
pub mod static_files;
