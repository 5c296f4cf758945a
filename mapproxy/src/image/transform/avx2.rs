//! The filters' AVX2 build: x86-64's baseline (SSE2) holds two f64 per register, AVX2 four,
//! the four bands of a pixel. The same IEEE operations in the same order, so the same bytes:
//! Rust never fuses a·b + c into an FMA, with or without the feature, and the vector
//! instructions round each lane as the scalar ones do. `transform.rs`'s golden test runs both
//! builds against Pillow's pixels.
//!
//! The kernels call `std::arch`'s value intrinsics from safe code inside `#[target_feature]`
//! functions (Rust 1.87, hence the workspace's `rust-version`).
//!
//! Why `unsafe` here: a `#[target_feature]` function may only be called once the CPU is known
//! to have the feature; [`with_avx2!`] and [`Avx2`] are the two places that call one, after
//! [`use_avx2`]. The kernels themselves are safe code (value intrinsics, no pointers).
#![allow(unsafe_code)]

use super::Source;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, __m256d, _mm256_add_pd, _mm256_cvtepi32_pd, _mm256_cvttpd_epi32, _mm256_max_pd,
    _mm256_min_pd, _mm256_mul_pd, _mm256_set1_pd, _mm256_set_pd, _mm256_setzero_pd, _mm256_sub_pd,
    _mm256_xor_pd, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtepu8_epi32, _mm_cvtsi128_si32,
    _mm_movemask_epi8, _mm_packus_epi16, _mm_packus_epi32, _mm_set_epi64x, _mm_setzero_si128,
    _mm_shuffle_epi32, _mm_srli_si128,
};

/// Whether this CPU runs the filters' AVX2 build (x86-64: the four bands of a pixel in one
/// register; the same IEEE operations, so the same bytes: Rust never fuses a·b + c into an
/// FMA, with or without the feature). `MPS_NO_AVX2` set: never (to measure or test the
/// baseline build).
#[cfg(target_arch = "x86_64")]
pub(super) fn use_avx2() -> bool {
    #[cfg(test)]
    if super::tests::BASELINE.with(std::cell::Cell::get) {
        return false;
    }
    static USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USE.get_or_init(|| {
        std::is_x86_feature_detected!("avx2") && std::env::var_os("MPS_NO_AVX2").is_none()
    })
}

/// Runs `$body` (a call of an `#[inline(always)]` kernel) compiled for AVX2 when the CPU has
/// it, else as built. The compiler cannot widen the filters' band arithmetic past x86-64's
/// SSE2 pairs without knowing the CPU, hence the one `unsafe` call: a `#[target_feature]`
/// function may only be called once the feature is known to be there.
macro_rules! with_avx2 {
    ($name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let r = {
            #[target_feature(enable = "avx2")]
            fn $name($($arg: $ty),*) -> $ret {
                $body
            }
            if $crate::image::transform::avx2::use_avx2() {
                // SAFETY: `use_avx2` checked that this CPU has AVX2.
                #[allow(unsafe_code)]
                unsafe {
                    $name($($arg),*)
                }
            } else {
                $body
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let r = $body;
        r
    }};
}

/// Proof that this CPU has AVX2 ([`Avx2::detect`]): the kernels that only an AVX2 CPU runs
/// are its methods.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Avx2(());

/// No AVX2 off x86-64: never made.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(super) enum Avx2 {}

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// `Some` when [`use_avx2`].
    pub(super) fn detect() -> Option<Avx2> {
        use_avx2().then_some(Avx2(()))
    }

    /// `BICUBIC(v1, v1, v2, v3, v4, dy)` of each column of four rows' horizontal passes (the
    /// four bands of a pixel in one register) and the clip to u8, into `out` (4 bytes per
    /// column).
    #[inline(always)]
    pub(super) fn cubic_columns(self, rows: [&[[f64; 4]]; 4], dy: f64, out: &mut [u8]) {
        // SAFETY: an `Avx2` exists only where `use_avx2` found AVX2 (`detect`).
        unsafe { cubic_columns(rows, dy, out) }
    }

    /// `BICUBIC_HEAD` (as `transform::bicubic_head`), with
    /// `floor` an instruction (`roundsd`; the baseline build has none, so it truncates and
    /// corrects): the same integers and fractions.
    #[inline(always)]
    pub(super) fn bicubic_head(
        self,
        s: &Source<'_>,
        xin: f64,
        yin: f64,
    ) -> Option<(i32, i32, f64, f64)> {
        // SAFETY: an `Avx2` exists only where `use_avx2` found AVX2 (`detect`).
        unsafe { bicubic_head(s, xin, yin) }
    }

    /// `bicubic_filter32RGB` of a window inside the source (four rows of four RGBA pixels)
    /// at fractions `dx`, `dy`: each row's `BICUBIC` with the four bands in one register,
    /// then the column's, then the clip to u8.
    #[inline(always)]
    pub(super) fn bicubic_window(self, rows: &[[u8; 16]; 4], dx: f64, dy: f64) -> [u8; 4] {
        // SAFETY: an `Avx2` exists only where `use_avx2` found AVX2 (`detect`).
        unsafe { bicubic_window(rows, dx, dy) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Avx2 {
    pub(super) fn detect() -> Option<Avx2> {
        None
    }

    pub(super) fn bicubic_window(self, _: &[[u8; 16]; 4], _: f64, _: f64) -> [u8; 4] {
        match self {}
    }

    pub(super) fn cubic_columns(self, _: [&[[f64; 4]]; 4], _: f64, _: &mut [u8]) {
        match self {}
    }

    pub(super) fn bicubic_head(
        self,
        _: &Source<'_>,
        _: f64,
        _: f64,
    ) -> Option<(i32, i32, f64, f64)> {
        match self {}
    }
}

/// `BICUBIC(v, v1, v2, v3, v4, d)` on four lanes, in `Geometry.c`'s order (as `cubic1`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn cubic(v1: __m256d, v2: __m256d, v3: __m256d, v4: __m256d, d: __m256d) -> __m256d {
    let neg = _mm256_set1_pd(-0.0);
    let nv1 = _mm256_xor_pd(v1, neg);
    let p1 = v2;
    let p2 = _mm256_add_pd(nv1, v3);
    let p3 = _mm256_sub_pd(
        _mm256_add_pd(
            _mm256_mul_pd(_mm256_set1_pd(2.0), _mm256_sub_pd(v1, v2)),
            v3,
        ),
        v4,
    );
    let p4 = _mm256_add_pd(_mm256_sub_pd(_mm256_add_pd(nv1, v2), v3), v4);
    let h = _mm256_add_pd(p3, _mm256_mul_pd(d, p4));
    let h = _mm256_add_pd(p2, _mm256_mul_pd(d, h));
    _mm256_add_pd(p1, _mm256_mul_pd(d, h))
}

/// The four pixels of a window row as f64 lanes (bands).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn row_pixels(v: __m128i) -> [__m256d; 4] {
    [
        _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(v)),
        _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_srli_si128::<4>(v))),
        _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_srli_si128::<8>(v))),
        _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_srli_si128::<12>(v))),
    ]
}

/// The four rows of a window as vectors of 16 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn window_bytes(rows: &[[u8; 16]; 4]) -> [__m128i; 4] {
    let mut out = [_mm_setzero_si128(); 4];
    for (o, row) in out.iter_mut().zip(rows) {
        let r = u128::from_le_bytes(*row);
        *o = _mm_set_epi64x((r >> 64) as i64, r as i64);
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn bicubic_window(rows: &[[u8; 16]; 4], dx: f64, dy: f64) -> [u8; 4] {
    // 16 equal pixels are that pixel (as in `transform::bicubic`): compared in one register
    let w = window_bytes(rows);
    let first = _mm_shuffle_epi32::<0>(w[0]);
    let eq = _mm_and_si128(
        _mm_and_si128(_mm_cmpeq_epi8(w[0], first), _mm_cmpeq_epi8(w[1], first)),
        _mm_and_si128(_mm_cmpeq_epi8(w[2], first), _mm_cmpeq_epi8(w[3], first)),
    );
    if _mm_movemask_epi8(eq) == 0xffff {
        return (_mm_cvtsi128_si32(first) as u32).to_le_bytes();
    }
    let dxv = _mm256_set1_pd(dx);
    let mut h = [_mm256_setzero_pd(); 4];
    for (hm, row) in h.iter_mut().zip(w) {
        let [p0, p1, p2, p3] = row_pixels(row);
        *hm = cubic(p0, p1, p2, p3, dxv);
    }
    clip_u8(cubic(h[0], h[1], h[2], h[3], _mm256_set1_pd(dy)))
}

/// Four f64 as a vector.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lanes(v: &[f64; 4]) -> __m256d {
    _mm256_set_pd(v[3], v[2], v[1], v[0])
}

/// The clip to u8 of four lanes: `<= 0` → 0, `>= 255` → 255, else truncated (maxpd gives 0
/// for a NaN, as `as u8`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn clip_u8(v: __m256d) -> [u8; 4] {
    let v = _mm256_min_pd(_mm256_max_pd(v, _mm256_setzero_pd()), _mm256_set1_pd(255.0));
    let i = _mm256_cvttpd_epi32(v);
    let b = _mm_packus_epi16(_mm_packus_epi32(i, i), _mm_setzero_si128());
    (_mm_cvtsi128_si32(b) as u32).to_le_bytes()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn cubic_columns(rows: [&[[f64; 4]]; 4], dy: f64, out: &mut [u8]) {
    let d = _mm256_set1_pd(dy);
    let [r0, r1, r2, r3] = rows;
    let columns = r0.iter().zip(r1).zip(r2.iter().zip(r3));
    for (o, ((a, b), (c, e))) in out.chunks_exact_mut(4).zip(columns) {
        let v = cubic(lanes(a), lanes(b), lanes(c), lanes(e), d);
        o.copy_from_slice(&clip_u8(v));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn bicubic_head(s: &Source<'_>, xin: f64, yin: f64) -> Option<(i32, i32, f64, f64)> {
    if !s.inside(xin, yin) {
        return None;
    }
    let (xin, yin) = (xin - 0.5, yin - 0.5);
    // whole numbers within i32 (the position is inside the source): the casts are exact
    let (fx, fy) = (xin.floor(), yin.floor());
    Some((fx as i32 - 1, fy as i32 - 1, xin - fx, yin - fy))
}
