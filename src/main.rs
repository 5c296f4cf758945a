fn main() {
    mapproxy_serve::cli::main()
}
