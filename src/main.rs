// The binary's allocator; an embedding program chooses its own (see Cargo.toml).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    mapproxy_serve::cli::main()
}
