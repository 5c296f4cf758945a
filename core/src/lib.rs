//! The core of mapproxy-serve: what apps, filters and servers are written against, and all an
//! extension crate depends on (as `axum-core` is for axum). It depends on no other crate of
//! the workspace; the runtime (`mapproxy-serve`: ini files, Paste Deploy rules, servers,
//! logging, command line) and every app and filter crate depend on it.
//!
//! | module | what |
//! |---|---|
//! | [`app`] | [`App`], [`Handler`](app::Handler), [`Body`], [`Filter`], body and response helpers |
//! | [`config`] | [`FactoryConf`](config::FactoryConf): a section's options, one typed reader per rule |
//! | [`ini`] | ini files read as Python's `ConfigParser` (Paste Deploy's settings), with the file:line of every key; `%(name)s` interpolation |
//! | [`error`] | [`ConfigError`](error::ConfigError) with its [`Location`](error::Location) (file:line, section), [`BoxError`] |
//! | [`registry`] | [`Factory`](registry::Factory), [`register_factory!`], the link-time registry |
//! | [`build`] | [`BuildContext`](build::BuildContext): watched files, warnings, the runtime, shutdown work |
//! | [`environ`] | request facts: mount path, public URL, remote address, user |
//! | [`path`] | the one URL-path normaliser |
//! | [`pyformat`] | Python's `%(name)s` formatting, tokenized (log formats, tile URL templates) |
//! | [`server`] | the [`Server`](server::Server) trait and the [`SharedApp`](server::SharedApp) it runs |
//! | [`logline`] | whole log lines into the runtime's logging |
#![deny(unsafe_code)]

pub mod app;
pub mod body;
pub mod build;
pub mod config;
pub mod environ;
pub mod error;
pub mod ini;
pub mod logline;
pub mod path;
pub mod pyformat;
pub mod registry;
pub mod server;

pub use app::{App, Body, Filter};
pub use error::BoxError;

#[doc(hidden)]
pub use inventory;
