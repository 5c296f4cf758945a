//! Built-in apps and composites.
pub mod cascade;
pub mod echo;
pub mod proxy;
pub mod static_files;
pub mod text;
pub mod urlmap;
