//! The `mapproxy-serve` command line.

/// Run the command line with the process arguments and exit.
pub fn main() {
    std::process::exit(0)
}
