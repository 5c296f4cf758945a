//! Seeding and cleaning caches ahead of traffic: MapProxy's `mapproxy-seed` (`seed/`), run as
//! `mapproxy-serve seed -f mapproxy.yaml -s seed.yaml`.
//!
//! | module | what | MapProxy |
//! |---|---|---|
//! | [`config`] | seed.yaml: `seeds`, `cleanups`, `coverages`, levels, `refresh_before`/`remove_before` | `seed/config.py`, `seed/spec.py` |
//! | [`coverage`] | bbox, GeoJSON and WKT coverages, transformed to the grid, intersects/contains | `config/coverage.py`, `util/coverage.py`, `util/geom.py` |
//! | [`walk`] | the meta tiles of a level within a coverage, in a fixed order; the `--nodes` split | `seed/seeder.py` `TileWalker` |
//! | [`run`] | tasks, workers (`-c`), retries, rate limit, progress lines, `--continue`, cleanup | `seed/seeder.py`, `seed/cleanup.py`, `seed/script.py`, `seed/util.py` |
//!
//! Meta tiles are made through the caches' own [`crate::tile_manager::TileManager`]s, so
//! seeding requests, splits, locks and stores exactly as serving does, and a server running
//! on the same cache at the same time shares the meta tile locks.

pub mod config;
pub mod coverage;
pub mod run;
pub mod walk;

pub use run::{main, Options};
