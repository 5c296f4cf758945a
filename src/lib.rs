//! mapproxy-serve: Paste Deploy ini files composed into one Tower service, served by hyper.
//!
//! Data flows top to bottom; no layer reaches up:
//!
//! ```text
//! ini text ─► ini/        ConfigParser-exact reader, positions, %(here)s interpolation
//!          ─► deploy/     Paste Deploy rules (use/set/get/pipeline/filter-with/...) → spec tree
//!          ─► registry    factories by egg name (inventory, link time)
//!          ─► app::App    one type-erased Tower service
//!          ─► server/     HTTP, unix socket, FastCGI
//! ```
#![deny(unsafe_code)]

pub mod app;
pub mod apps;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod error;
pub mod filters;
pub mod ini;
pub mod logging;
pub mod registry;
pub mod server;

pub use app::{App, Body, Filter};
pub use mapproxy_serve_filters::environ;

#[doc(hidden)]
pub use inventory;
