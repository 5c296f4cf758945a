//! mapproxy-serve: Paste Deploy ini files composed into one Tower service, served by hyper.
//!
//! This crate is the runtime; what apps and filters are written against is the core crate
//! ([`mapproxy_serve_core`], re-exported here under the same module names). Data flows top to
//! bottom; no layer reaches up:
//!
//! ```text
//! ini text ─► ini/        ConfigParser-exact reader, positions, %(here)s interpolation
//!          ─► deploy/     Paste Deploy rules (use/set/get/pipeline/filter-with/...) → spec tree
//!          ─► registry    factories by egg name (core crate; inventory, link time)
//!          ─► app::App    one type-erased Tower service (core crate)
//!          ─► server/     HTTP, unix socket, FastCGI
//! ```
//!
//! The binary links the factory crates (`mapproxy-serve-apps`, `mapproxy-serve-filters`) as a
//! user's binary links their own; see ARCHITECTURE.md.
#![deny(unsafe_code)]

pub mod cli;
pub mod deploy;
mod eggs;
pub mod logging;
pub mod server;

pub use mapproxy_serve_core::{app, build, config, environ, error, ini, path, registry};
pub use mapproxy_serve_core::{App, Body, Filter};

/// The factory crates this runtime links (their eggs register at link time).
pub use mapproxy_serve_apps as apps;
pub use mapproxy_serve_filters as filters;
pub use mapproxy_serve_mapproxy as mapproxy;
pub use mapproxy_serve_wps as wps;

#[doc(hidden)]
pub use mapproxy_serve_core::inventory;
#[doc(hidden)]
pub use mapproxy_serve_core::register_factory;
