fn main() {
    tune_malloc();
    mapproxy_serve::cli::main()
}

/// glibc's malloc gives freed memory back to the kernel as soon as the top of a heap holds
/// more than 128 KiB (and its threshold for mmapping a block moves with each free): a WMS
/// GetMap allocates and frees several 4 MB image buffers, so every request paid for mapping
/// them again, page by page (half of a 1024×1024 JPEG GetMap's CPU time was the kernel's page
/// faults). Freed memory is kept (up to 64 MiB per arena) and heaps grow by 16 MiB at a time,
/// so the buffers of one request are reused by the next: a 1024² JPEG took 21 ms of CPU
/// before, 10 ms after (bench/README.md, "MapProxy: WMS GetMap"). Two arenas (glibc's
/// default is 8 per core): with one per blocking thread, each keeping its 64 MiB, the RSS
/// reached 780 MB; with two it stays at ~190 MB, as before.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only sets malloc's parameters; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
