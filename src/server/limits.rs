//! The bounds of the servers' numeric options, shared by HTTP and FastCGI: a value outside
//! them is a configuration error naming file:line and the key (read by the core crate's
//! typed readers), never a panic at start or a runtime that cannot be built.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::config::FactoryConf;
use crate::error::ConfigError;

/// The longest timeout an option may give, in seconds (one day).
pub const MAX_TIMEOUT: f64 = 86_400.0;

/// Worker threads at most: tokio starts them all at once, and far more than cores only costs
/// memory (each has its own stack).
pub const MAX_THREADS: usize = 1024;

/// Open connections (and concurrent requests) at most.
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// `max_request_header_size`: 1 KiB to 16 MiB.
pub const HEADER_SIZE: RangeInclusive<u64> = 1024..=16 << 20;

/// `max_request_body_size`: up to 1 TiB.
pub const BODY_SIZE: RangeInclusive<u64> = 0..=1 << 40;

/// A timeout option in seconds: `default` when absent, `0` = no limit (`None`), at most
/// [`MAX_TIMEOUT`].
pub fn timeout(
    conf: &FactoryConf,
    key: &str,
    default: f64,
) -> Result<Option<Duration>, ConfigError> {
    conf.get_timeout(key, default, MAX_TIMEOUT)
}
