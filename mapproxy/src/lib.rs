//! MapProxy 7 in Rust, for mapproxy-serve: the same URLs, bytes and cache files as Python
//! MapProxy. This crate grows brick by brick; it registers no egg yet, so nothing of it is
//! reachable from a `.ini` file.
//!
//! | module | what | MapProxy |
//! |---|---|---|
//! | [`grid`] | tile grids: resolutions, tile coordinates and bboxes, level lookup | `mapproxy/grid/`, `config/configuration/grid.py` |
#![deny(unsafe_code)]

pub mod grid;
