//! zlib's own `deflate`, for PNG data as Pillow compresses it.
//!
//! MapProxy's PNGs are Pillow's, and Pillow deflates with the stock zlib (`deflateInit2` with
//! level 6, a 32 KiB window, memLevel 9 and a strategy, ZipEncode.c). A deflate stream is not
//! unique: the same data compressed by another deflate implementation at "level 6" (zlib-rs,
//! which follows zlib-ng's level 6, or miniz_oxide) decodes to the same pixels but is
//! different bytes, and different cache files. So this calls the stock zlib itself for
//! `Z_FILTERED` and `Z_DEFAULT_STRATEGY` (an RLE stream has nothing to differ in: zlib-rs
//! writes it, [`deflate_rle`]), through libz-sys, built from the zlib source that crate
//! bundles (its `static` feature: the same bytes on every machine, whatever zlib the system
//! has; checked against Pillow 13 on zlib 1.2.13 by the golden tests in `codec.rs` and
//! `indexed.rs`). No safe Rust binding exposes `memLevel` and the strategy (flate2 sets neither), hence the few `unsafe` calls below.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_uint};

use libz_sys as z;

/// zlib's compression strategies used for PNGs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `Z_FILTERED`: Pillow's default for truecolour PNG rows (filtered data); the stock
    /// zlib's.
    Filtered,
    /// `Z_RLE`: what MapProxy's `img_to_buf` asks for quantized (paletted) images; zlib-rs's
    /// (the same bytes, faster: [`deflate_rle`]).
    Rle,
    /// `Z_DEFAULT_STRATEGY`: Pillow's default for 8-bit paletted rows (ZipEncode.c's
    /// `ZIP_PNG_PALETTE`), as a paletted image MapProxy did not quantize is written; the
    /// stock zlib's.
    Default,
}

/// An initialised zlib deflate stream, boxed (zlib keeps a pointer back to it, so it must
/// not move), ended when dropped.
struct Stream {
    z: Box<z::z_stream>,
}

// SAFETY: a z_stream is plain memory zlib reads and writes only inside the calls made on it;
// a `Stream` is used by one thread at a time (taken from `STREAMS`, given back after).
unsafe impl Send for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2 and is not used after this.
        unsafe { z::deflateEnd(&mut *self.z) };
    }
}

impl Stream {
    /// Pillow's `deflateInit2(6, Z_DEFLATED, 15, 9, strategy)`.
    fn new(strategy: c_int) -> Result<Stream, String> {
        let mut zs = Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
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
        });
        let size = c_int::try_from(std::mem::size_of::<z::z_stream>()).unwrap_or(c_int::MAX);
        // SAFETY: `zs` is a fully initialised z_stream in a box that is never moved out of;
        // the version string is zlib's own.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *zs,
                6,
                z::Z_DEFLATED,
                15,
                9,
                strategy,
                z::zlibVersion(),
                size,
            )
        };
        if rc != z::Z_OK {
            return Err(format!("zlib deflateInit2 failed ({rc})"));
        }
        Ok(Stream { z: zs })
    }
}

/// Streams kept between images (as the JPEG compressors are, at most one per CPU): zlib's state at
/// memLevel 9 is about 400 KB, allocated and zeroed by every `deflateInit2`, which cost more
/// than deflating a small tile. `deflateReset` makes a kept one as new.
static FILTERED: super::Kept<Stream> = super::Kept::new();
static DEFAULT: super::Kept<Stream> = super::Kept::new();

/// `data` deflated in one call at Pillow's settings, `deflateInit2(6, Z_DEFLATED, 15, 9,
/// strategy)` (level 6, a 32 KiB window, memLevel 9): a zlib stream (header, deflate data,
/// Adler-32).
pub fn deflate(data: &[u8], strategy: Strategy) -> Result<Vec<u8>, String> {
    if strategy == Strategy::Rle {
        return deflate_rle(data);
    }
    let (kept, strategy) = match strategy {
        Strategy::Default => (&DEFAULT, z::Z_DEFAULT_STRATEGY),
        _ => (&FILTERED, z::Z_FILTERED),
    };
    let len = c_uint::try_from(data.len())
        .map_err(|_| format!("{} bytes are too many to deflate at once", data.len()))?;
    let mut stream = match kept.take() {
        Some(mut s) => {
            // SAFETY: an initialised stream, used by this thread alone.
            if unsafe { z::deflateReset(&mut *s.z) } == z::Z_OK {
                s
            } else {
                Stream::new(strategy)?
            }
        }
        None => Stream::new(strategy)?,
    };
    let zs = &mut *stream.z;
    // SAFETY: the stream is initialised.
    let bound = unsafe { z::deflateBound(zs, z::uLong::from(len)) };
    let mut out: Vec<u8> = Vec::with_capacity(usize::try_from(bound).unwrap_or(usize::MAX));
    let rc = match c_uint::try_from(out.capacity()) {
        Ok(avail) => {
            // zlib reads through next_in; it never writes to the input
            zs.next_in = data.as_ptr().cast_mut();
            zs.avail_in = len;
            zs.next_out = out.as_mut_ptr();
            zs.avail_out = avail;
            // SAFETY: next_in/avail_in describe `data`, next_out/avail_out `out`'s spare
            // capacity, both alive for the call; deflateBound's bound makes one Z_FINISH
            // call enough.
            unsafe { z::deflate(zs, z::Z_FINISH) }
        }
        Err(_) => z::Z_BUF_ERROR,
    };
    let written = usize::try_from(zs.total_out).unwrap_or(0);
    // the stream keeps no pointer into `data` or `out` once given back
    zs.next_in = std::ptr::null_mut();
    zs.avail_in = 0;
    zs.next_out = std::ptr::null_mut();
    zs.avail_out = 0;
    if rc != z::Z_STREAM_END || written > out.capacity() {
        return Err(format!("zlib deflate failed ({rc})"));
    }
    // SAFETY: deflate wrote `written` (≤ capacity) bytes at the start of `out`.
    unsafe { out.set_len(written) };
    // dropped (ended) when one per CPU is kept already
    drop(kept.give_back(stream));
    Ok(out)
}

/// [`deflate`] with `Z_RLE`, by zlib-rs: its RLE stream is the stock zlib's byte for byte
/// (`Z_RLE` only ever matches the previous byte, so no hash or search policy can differ;
/// the paletted PNG goldens in `codec.rs` are MapProxy 7's files) and zlib-rs makes it 2-4×
/// faster than zlib 1.3's `deflate_rle` (bench `encode`: a debug-like transparent tile 361
/// against 1,229 µs, a textured one 1,637 against 2,441).
fn deflate_rle(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; zlib_rs::compress_bound(data.len())];
    let config = zlib_rs::DeflateConfig {
        level: 6,
        strategy: zlib_rs::Strategy::Rle,
        mem_level: 9,
        ..zlib_rs::DeflateConfig::default()
    };
    let (deflated, rc) = zlib_rs::compress_slice(&mut out, data, config);
    if rc != zlib_rs::ReturnCode::Ok {
        return Err(format!("zlib-rs deflate failed ({rc:?})"));
    }
    let n = deflated.len();
    out.truncate(n);
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
