//! The runtime's servers run the composed app: HTTP/1.1 and h2c on TCP and unix sockets
//! ([`http`]), FastCGI ([`fcgi`]). What a server is ([`Server`], [`ServeContext`],
//! [`SharedApp`]) is defined by the core crate, so a crate of its own can add one.

pub mod bind;
pub mod fcgi;
pub mod http;
pub mod limits;
pub mod panic;

pub use mapproxy_serve_core::server::{ServeContext, ServeError, ServeFuture, Server, SharedApp};
