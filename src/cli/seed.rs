//! `mapproxy-serve seed -f mapproxy.yaml -s seed.yaml`: MapProxy's `mapproxy-seed`, with the
//! same options, plus `--nodes N --node I` (several machines seed one cache without overlap),
//! `--rate-limit` and `--progress-lines`. The work is in the MapProxy crate
//! (`mapproxy/src/seed/`); this file reads the command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mapproxy_serve_mapproxy::seed;

use super::EXIT_CONFIG;

/// The options of `seed`.
#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// The seed configuration (instead of -s)
    #[arg(value_name = "SEED_CONF")]
    pub seed_conf_arg: Option<PathBuf>,
    /// The seed configuration (seed.yaml)
    #[arg(short = 's', long = "seed-conf", value_name = "FILE")]
    pub seed_conf: Option<PathBuf>,
    /// The MapProxy configuration (mapproxy.yaml)
    #[arg(short = 'f', long = "proxy-conf", value_name = "FILE")]
    pub proxy_conf: Option<PathBuf>,
    /// Meta tiles made at once
    #[arg(short = 'c', long = "concurrency", default_value_t = 2)]
    pub concurrency: usize,
    /// Walk and count the tiles, request and remove nothing
    #[arg(short = 'n', long = "dry-run")]
    pub dry_run: bool,
    /// Print the tasks and exit
    #[arg(long)]
    pub summary: bool,
    /// Only these seed tasks (comma-separated, repeatable; ALL for all); cleanups only with --cleanup
    #[arg(long = "seed", value_name = "TASK1,TASK2")]
    pub seed_names: Vec<String>,
    /// Only these cleanup tasks (comma-separated, repeatable; ALL for all); seeds only with --seed
    #[arg(long = "cleanup", value_name = "TASK1,TASK2")]
    pub cleanup_names: Vec<String>,
    /// Only refresh meta tiles of which a tile is already cached (with refresh_before)
    #[arg(long = "skip-uncached")]
    pub skip_uncached: bool,
    /// Continue an interrupted run from the progress file
    #[arg(long = "continue")]
    pub continue_seed: bool,
    /// Where the progress is kept (default with --continue: .mapproxy_seed_progress)
    #[arg(long = "progress-file", value_name = "FILE")]
    pub progress_file: Option<PathBuf>,
    /// Stop after this long, keeping the progress (120s, 15m, 4h, 0.5d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Split the work over this many machines (each runs with its own --node)
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// This machine's share, 0 to NODES-1
    #[arg(long, default_value_t = 0)]
    pub node: u32,
    /// At most this many requests (meta tiles) per second to each source
    #[arg(long = "rate-limit", value_name = "PER_SECOND")]
    pub rate_limit: Option<f64>,
    /// When not on a terminal: a progress line every N meta tiles (0: none)
    #[arg(long = "progress-lines", value_name = "N", default_value_t = 1000)]
    pub progress_lines: u64,
    /// Attempts per meta tile before it counts as failed
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Fewer messages (repeat: no progress at all)
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// MapProxy's `parse_duration`: `10s`, `15m`, `0.5h`, `3d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration value: {s:?}, expected (10s, 15m, 0.5h, 3d, etc)");
    let unit = s.chars().last().ok_or_else(err)?;
    let n: f64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| err())?;
    let secs = match unit {
        's' => n,
        'm' => n * 60.0,
        'h' => n * 3600.0,
        'd' => n * 86400.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// `--seed a,b --seed c` → `[a, b, c]`; `ALL` → all (`None`).
fn names(list: &[String]) -> Option<Vec<String>> {
    let v: Vec<String> = list
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if v == ["ALL"] {
        None
    } else {
        Some(v)
    }
}

/// Run `seed`; the exit status.
pub fn run(a: SeedArgs) -> i32 {
    let Some(seed_conf) = a.seed_conf.or(a.seed_conf_arg) else {
        eprintln!(
            "mapproxy-serve seed: missing seed_conf file as last argument or -s/--seed-conf option"
        );
        return EXIT_CONFIG;
    };
    let Some(proxy_conf) = a.proxy_conf else {
        eprintln!("mapproxy-serve seed: missing mapproxy configuration -f/--proxy-conf");
        return EXIT_CONFIG;
    };
    // MapProxy's task_names: --seed alone disables cleanups and the other way round
    let (seed_names, cleanup_names) = match (a.seed_names.is_empty(), a.cleanup_names.is_empty()) {
        (true, true) => (None, None),
        (false, true) => (names(&a.seed_names), Some(Vec::new())),
        (true, false) => (Some(Vec::new()), names(&a.cleanup_names)),
        (false, false) => (names(&a.seed_names), names(&a.cleanup_names)),
    };
    let progress_file = match (a.progress_file, a.continue_seed) {
        (Some(f), _) => Some(f),
        (None, true) => Some(PathBuf::from(".mapproxy_seed_progress")),
        (None, false) => None,
    };
    let o = seed::Options {
        concurrency: a.concurrency.max(1),
        seed_names,
        cleanup_names,
        dry_run: a.dry_run,
        summary: a.summary,
        skip_uncached: a.skip_uncached,
        nodes: a.nodes,
        node: a.node,
        progress_file,
        continue_seed: a.continue_seed,
        duration: a.duration,
        rate_limit: a.rate_limit.filter(|r| *r > 0.0),
        progress_lines: a.progress_lines,
        quiet: a.quiet,
        retries: a.retries.max(1),
    };
    seed::main(&proxy_conf, &seed_conf, &o, Box::new(std::io::stdout()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_names() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("0.5h"), Ok(Duration::from_secs(1800)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            names(&["a,b".into(), "c".into()]),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(names(&["ALL".into()]), None);
    }
}
