//! A PyWPS-compatible OGC WPS 1.0.0 for mapproxy-serve (`egg:mapproxy-serve#wps`, alias
//! `egg:PyWPS#app`): processes written in Rust and registered at link time
//! ([`register_process!`]), configured by PyWPS's `pywps.cfg`.
//!
//! | module | what |
//! |---|---|
//! | [`process`] | the [`Process`](process::Process) trait, descriptors, inputs and outputs |
//! | [`config`] | `pywps.cfg` with PyWPS's defaults |
//! | [`request`] | KVP and XML requests |
//! | [`xml`] | the response documents |
//! | [`exception`] | OWS exception reports |
//! | `service` | the app: dispatch, Execute, jobs, status documents |
//! | [`processes`] | the pywps-flask example processes |
#![deny(unsafe_code)]

pub mod config;
mod eggs;
pub mod exception;
mod factory;
pub mod process;
pub mod processes;
pub mod request;
mod service;
pub mod xml;

pub use factory::build;
pub use service::Wps;

/// The PyWPS version whose documents these follow (printed in their `<!-- PyWPS -->` comment).
pub const PYWPS_VERSION: &str = "4.8.1";

#[doc(hidden)]
pub use inventory;
