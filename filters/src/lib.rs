//! Reusable Tower middleware for serving HTTP apps the way Paste Deploy deployments do:
//! forwarded headers, basic auth, access log, static files, reverse proxy, cascade.
//!
//! This crate knows nothing about ini files or the factory registry: every middleware is a
//! plain [`tower::Layer`] usable in any hyper or axum stack. The request extensions in
//! [`environ`] carry what WSGI kept in `environ` (`SCRIPT_NAME`, `REMOTE_ADDR`,
//! `REMOTE_USER`, the public scheme and host) from one layer to the next.
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub mod access_log;
pub mod basic_auth;
pub mod cascade;
pub mod environ;
pub mod error_catcher;
pub mod htpasswd;
pub mod proxy;
pub mod proxy_headers;
pub mod static_files;
