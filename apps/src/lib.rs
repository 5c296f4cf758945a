//! The apps and composites of mapproxy-serve: each module is one app and the `build` function
//! that reads its ini options. Every egg of the crate is registered in `src/eggs.rs`.
//!
//! | egg names | module |
//! |---|---|
//! | `mapproxy-serve#urlmap`, `Paste#urlmap` | [`urlmap`] |
//! | `mapproxy-serve#cascade`, `Paste#cascade` | [`cascade`] |
//! | `mapproxy-serve#static`, `Paste#static` | [`serve_dir`] |
//! | `mapproxy-serve#proxy`, `Paste#proxy` | [`proxy`] (upstreams through `mapproxy-serve-client`) |
//! | `mapproxy-serve#text` | [`text`] |
//! | `mapproxy-serve#echo` | [`echo`] |
#![deny(unsafe_code)]

pub mod cascade;
pub mod echo;
mod eggs;
pub mod proxy;
pub mod serve_dir;
pub mod text;
pub mod urlmap;
