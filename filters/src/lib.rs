//! The filters (middleware) of mapproxy-serve: each module is one filter, its Tower layer or
//! [`Handler`](mapproxy_serve_core::app::Handler) and the `build` function that reads its ini
//! options. Every egg of the crate is registered in [`eggs`](crate::eggs) (`src/eggs.rs`).
//!
//! | egg names | module |
//! |---|---|
//! | `mapproxy-serve#access_log`, `Paste#translogger` | [`access_log`] |
//! | `mapproxy-serve#basic_auth`, `Paste#auth_basic` | [`basic_auth`] (with its [`htpasswd`](basic_auth::htpasswd) reader) |
//! | `mapproxy-serve#proxy_headers`, `PasteDeploy#prefix` | [`proxy_headers`] |
//! | `mapproxy-serve#compress`, `Paste#gzip` | [`compress`] |
//! | `mapproxy-serve#error_catcher`, `Paste#errorcatcher` | [`error_catcher`] |
//! | `mapproxy-serve#cors` | [`cors`] |
//! | `mapproxy-serve#body_limit`, `#timeout`, `#headers`, `#request_id` | [`limits`] |
//!
//! The layers work in any Tower stack whose bodies are the core crate's
//! [`Body`](mapproxy_serve_core::Body); the request facts they read and set
//! (`REMOTE_USER`, `SCRIPT_NAME`, ...) are the core crate's
//! [`environ`](mapproxy_serve_core::environ). Every factory can be tried without an ini file:
//!
//! ```
//! use mapproxy_serve_core::{build::BuildContext, config::FactoryConf};
//!
//! let conf = FactoryConf::from_pairs("Paste#auth_basic", [("realm", "maps"), ("users", "a:b")]);
//! let filter = mapproxy_serve_filters::basic_auth::build(&conf, &mut BuildContext::current());
//! assert!(filter.is_ok());
//! ```
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub mod access_log;
pub mod basic_auth;
pub mod compress;
pub mod cors;
mod eggs;
pub mod error_catcher;
pub mod limits;
pub mod proxy_headers;
#[cfg(test)]
mod test_util;
