//! `custom-auth-serve`: `mapproxy-serve`'s whole command line (serve, check, inspect,
//! list-factories, ...) with this crate's `egg:custom-auth#api_key` linked in.

// Link the library so its `register_factory!` item is part of this program. A crate nothing
// refers to is not linked, and its factories would be missing. Any binary crate that depends
// on `custom-auth` does exactly this.
use custom_auth as _;

fn main() {
    mapproxy_serve::cli::main()
}
