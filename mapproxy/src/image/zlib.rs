//! zlib's own `deflate`, for PNG data as Pillow compresses it.
//!
//! MapProxy's PNGs are Pillow's, and Pillow deflates with the stock zlib (`deflateInit2` with
//! level 6, a 32 KiB window, memLevel 9 and a strategy, ZipEncode.c). A deflate stream is not
//! unique: the same data compressed by another deflate implementation at "level 6" (zlib-rs,
//! which follows zlib-ng's level 6, or miniz_oxide) decodes to the same pixels but is
//! different bytes, and different cache files. So this calls the stock zlib itself, through
//! libz-sys, built from the zlib source that crate bundles (its `static` feature: the same
//! bytes on every machine, whatever zlib the system has; checked against Pillow 13 on zlib
//! 1.2.13 by the golden tests in `codec.rs`). No safe Rust binding exposes `memLevel` and the
//! strategy (flate2 sets neither), hence the few `unsafe` calls below.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_uint};

use libz_sys as z;

/// zlib's compression strategies used for PNGs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `Z_FILTERED`: Pillow's default for truecolour PNG rows (filtered data).
    Filtered,
    /// `Z_RLE`: what MapProxy's `img_to_buf` asks for quantized (paletted) images.
    Rle,
}

/// `data` deflated in one call as zlib's `compress2` would, with `deflateInit2(level,
/// Z_DEFLATED, 15, mem_level, strategy)`: a zlib stream (header, deflate data, Adler-32).
pub fn deflate(
    data: &[u8],
    level: i32,
    mem_level: i32,
    strategy: Strategy,
) -> Result<Vec<u8>, String> {
    let strategy = match strategy {
        Strategy::Filtered => z::Z_FILTERED,
        Strategy::Rle => z::Z_RLE,
    };
    let len = c_uint::try_from(data.len())
        .map_err(|_| format!("{} bytes are too many to deflate at once", data.len()))?;
    let mut stream = z::z_stream {
        // zlib reads through it; it never writes to the input
        next_in: data.as_ptr().cast_mut(),
        avail_in: len,
        total_in: 0,
        next_out: std::ptr::null_mut(),
        avail_out: 0,
        total_out: 0,
        msg: std::ptr::null_mut(),
        state: std::ptr::null_mut(),
        zalloc,
        zfree,
        opaque: std::ptr::null_mut(),
        data_type: 0,
        adler: 0,
        reserved: 0,
    };
    let size = c_int::try_from(std::mem::size_of::<z::z_stream>()).unwrap_or(c_int::MAX);
    // SAFETY: `stream` is a fully initialised z_stream that is not moved until deflateEnd
    // below; the version string is zlib's own.
    let rc = unsafe {
        z::deflateInit2_(
            &mut stream,
            level,
            z::Z_DEFLATED,
            15,
            mem_level,
            strategy,
            z::zlibVersion(),
            size,
        )
    };
    if rc != z::Z_OK {
        return Err(format!("zlib deflateInit2 failed ({rc})"));
    }
    // SAFETY: the stream was initialised above.
    let bound = unsafe { z::deflateBound(&mut stream, z::uLong::from(len)) };
    let mut out: Vec<u8> = Vec::with_capacity(usize::try_from(bound).unwrap_or(usize::MAX));
    let rc = match c_uint::try_from(out.capacity()) {
        Ok(avail) => {
            stream.next_out = out.as_mut_ptr();
            stream.avail_out = avail;
            // SAFETY: next_in/avail_in describe `data`, next_out/avail_out `out`'s spare
            // capacity, both alive for the call; deflateBound's bound makes one Z_FINISH
            // call enough.
            unsafe { z::deflate(&mut stream, z::Z_FINISH) }
        }
        Err(_) => z::Z_BUF_ERROR,
    };
    let written = usize::try_from(stream.total_out).unwrap_or(0);
    // SAFETY: the stream was initialised above and is not used after this.
    unsafe { z::deflateEnd(&mut stream) };
    if rc != z::Z_STREAM_END || written > out.capacity() {
        return Err(format!("zlib deflate failed ({rc})"));
    }
    // SAFETY: deflate wrote `written` (≤ capacity) bytes at the start of `out`.
    unsafe { out.set_len(written) };
    Ok(out)
}

/// zlib's allocator hooks (libz-sys types them as non-null function pointers, so zlib's
/// default `Z_NULL` cannot be given): C's calloc and free, as zlib's own `zcalloc` does.
extern "C" fn zalloc(_: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    // SAFETY: calloc takes any sizes and returns null when it cannot allocate.
    unsafe { libc::calloc(items as usize, size as usize) }
}

extern "C" fn zfree(_: z::voidpf, address: z::voidpf) {
    // SAFETY: zlib frees only what zalloc returned.
    unsafe { libc::free(address) }
}
