//! `custom-process-serve`: `mapproxy-serve`'s whole command line with `word_count` linked in.

// Link the library so its `register_process!` item is part of this program (a crate nothing
// refers to is not linked).
use custom_process as _;

fn main() {
    mapproxy_serve::cli::main()
}
