//! Helpers shared by this crate's integration tests (`mod support;`).

pub mod chromium;
pub mod moto;
pub mod redis;
