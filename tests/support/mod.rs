//! What the integration tests share, one module per role:
//!
//! | module | what |
//! |---|---|
//! | [`process`] | the binary as a process: [`Served`] (the one handle of a running server), [`run`] for commands that exit, files in tempdirs |
//! | `http` | one HTTP/1.1 request per connection, the path sent as given; [`Resp`] |
//! | [`programs`] | finding a real peer (nginx, lighttpd, Apache), or SKIP / fail under CI |
//! | [`peer`] | running such a peer in the foreground with a config template |
//! | [`fcgi`] | an in-process FastCGI server with an echo app, and a raw record client |
//!
//! Each test binary includes this tree with `mod support;` and uses what it needs.
#![allow(dead_code, unused_imports)]

pub mod fcgi;
mod http;
pub mod peer;
pub mod process;
pub mod programs;

pub use http::{basic, free_port, get, send, send_within, Resp};
pub use process::*;
pub use programs::find_program;
