//! A baseline JPEG encoder whose files are byte for byte those of libjpeg-turbo as Pillow
//! drives it for MapProxy's `img.save(buf, 'jpeg', quality=Q)` (`JpegEncode.c`:
//! `jpeg_set_defaults`, `jpeg_set_quality(Q, TRUE)`, 4:2:0, no Huffman optimisation, no
//! restart markers, the integer "islow" DCT): the default (pure-Rust) build's JPEG encoder.
//!
//! It replaced the jpeg-encoder crate, whose files could not match: it writes JFIF 1.02, SOF
//! before DQT and component ids 0-2 (libjpeg: 1.01, DQT first, 1-3); it samples chroma at one
//! pixel of four where libjpeg averages the four (on a noise tile 65,518 of 65,536 decoded
//! pixels differed from Pillow's, by up to 138 levels); its luma rounds halves down; and it
//! DCTs the padding blocks at the image's right and bottom edges where libjpeg writes dummy
//! blocks. Its islow DCT and reciprocal quantization were already libjpeg-turbo's. No
//! maintained pure-Rust crate we know writes libjpeg's bytes. This one takes about as long
//! as jpeg-encoder with its AVX2 paths (17-18 ms and 15-17 ms for a textured 1024×1024 image,
//! alternating, on a loaded 2-core VM); libjpeg-turbo (feature `turbojpeg`) measured 2.6×
//! faster than jpeg-encoder (bench/README.md).
//!
//! What libjpeg does, step by step (jccolor.c, jcsample.c, jcprepct.c, jccoefct.c,
//! jfdctint.c, jcdctmgr.c, jchuff.c, jcmarker.c of libjpeg-turbo 3), and so what this does:
//!
//! - RGB to YCbCr in 16-bit fixed point: `Y = (19595 R + 38470 G + 7471 B + 2^15) >> 16`,
//!   `Cb = (-11059 R - 21709 G + 32768 B + 128·2^16 + 2^15 - 1) >> 16`, `Cr` likewise with
//!   `32768, -27439, -5329`.
//! - The image's last column and row are repeated out to whole blocks (luma: to a multiple of
//!   8 columns and of 16 rows); chroma is the rounded mean of 2×2 pixels, the rounding's bias
//!   alternating 1, 2, 1, 2 along a row, over the image widened (by its last column) to
//!   `ceil(W/16)·16` columns and, when the height is odd, lengthened by its last row; chroma
//!   rows past the image repeat the last.
//! - Luma blocks of the last MCU column or row that lie wholly outside the image (past
//!   `ceil(W/8)` or `ceil(H/8)` blocks) are not transformed: their AC coefficients are 0 and
//!   their DC is that of the block before them in the MCU.
//! - The islow forward DCT (Loeffler-Ligtenberg-Moschytz, 13-bit constants, 2 extra bits in
//!   the first pass), quantized by libjpeg-turbo's reciprocal multiplication (which rounds
//!   halves away from zero, as a division would).
//! - Quantization tables: Annex K's scaled by `jpeg_set_quality` (`5000/Q` below 50,
//!   `200 - 2Q` from 50), clamped to 1-255; Huffman tables: Annex K's.
//! - Markers: SOI, APP0 JFIF 1.01 (no density unit, 1:1, no thumbnail), DQT 0 and DQT 1,
//!   SOF0, DHT DC 0, AC 0, DC 1, AC 1, SOS, the scan (the last byte padded with 1 bits), EOI.
//!
//! libjpeg-turbo's SIMD colour conversion, downsampling, DCT and quantization give the same
//! numbers as its C code, which this follows; `codec.rs`'s tests compare this encoder with
//! files Pillow wrote and, with the `turbojpeg` feature, with libjpeg-turbo itself.

/// JPEG's zigzag order: the natural (row-major) index of the `k`th coefficient.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Annex K.1's luminance quantization table, natural order.
const STD_LUMA_QUANT: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// Annex K.1's chrominance quantization table, natural order.
const STD_CHROMA_QUANT: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// Annex K.3's Huffman tables: code counts by length 1-16, then the symbols.
const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

/// libjpeg's `JPEG_MAX_DIMENSION`: larger images are refused (Pillow raises).
const MAX_DIMENSION: u32 = 65500;

/// An RGBA image (the alpha not read, as Pillow's `convert('RGB')` drops it) as a baseline
/// 4:2:0 JPEG at `quality` (clamped to 1-100, as `jpeg_set_quality` clamps it).
pub(super) fn encode(rgba: &[u8], width: u32, height: u32, quality: u8) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(format!(
            "{width}×{height} is not a JPEG's size (1 to {MAX_DIMENSION})"
        ));
    }
    let (w, h) = (width as usize, height as usize);
    if rgba.len() != w * h * 4 {
        return Err(format!("{} bytes are not a {w}×{h} RGBA image", rgba.len()));
    }
    let planes = Planes::new(rgba, w, h);
    let luma_q = Quant::new(&STD_LUMA_QUANT, quality);
    let chroma_q = Quant::new(&STD_CHROMA_QUANT, quality);
    let dc_luma = Huffman::new(&DC_LUMA_BITS, &DC_VALS);
    let ac_luma = Huffman::new(&AC_LUMA_BITS, &AC_LUMA_VALS);
    let dc_chroma = Huffman::new(&DC_CHROMA_BITS, &DC_VALS);
    let ac_chroma = Huffman::new(&AC_CHROMA_BITS, &AC_CHROMA_VALS);

    let mut out = Vec::with_capacity(1024 + w * h / 4);
    write_headers(&mut out, width, height, &luma_q, &chroma_q);

    let mut bits = BitWriter { out, acc: 0, n: 0 };
    let (mcus_x, mcus_y) = (w.div_ceil(16), h.div_ceil(16));
    let (blocks_x, blocks_y) = (w.div_ceil(8), h.div_ceil(8));
    let mut last_dc = [0i32; 3];
    let mut block = [[0i32; 8]; 8];
    let mut zz = [0i32; 64];
    for my in 0..mcus_y {
        for mx in 0..mcus_x {
            // Y: four blocks in the order (0,0), (1,0), (0,1), (1,1)
            let mut dcs = [0i32; 4];
            for (i, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                let (bx, by) = (2 * mx + dx, 2 * my + dy);
                let nonzero = if bx < blocks_x && by < blocks_y {
                    planes.block(0, bx * 8, by * 8, &mut block);
                    fdct_islow(&mut block);
                    luma_q.quantize(&block, &mut zz)
                } else {
                    // a dummy block: AC 0, DC the previous block's in the MCU (the one to the
                    // left, or for a bottom row the last of the row above)
                    zz = [0; 64];
                    zz[0] = dcs[i.saturating_sub(1)];
                    0
                };
                dcs[i] = zz[0];
                bits.block(&zz, nonzero, &mut last_dc[0], &dc_luma, &ac_luma);
            }
            for (c, last_dc) in last_dc.iter_mut().enumerate().skip(1) {
                planes.block(c, mx * 8, my * 8, &mut block);
                fdct_islow(&mut block);
                let nonzero = chroma_q.quantize(&block, &mut zz);
                bits.block(&zz, nonzero, last_dc, &dc_chroma, &ac_chroma);
            }
        }
    }
    let mut out = bits.finish();
    out.extend_from_slice(&[0xff, 0xd9]);
    Ok(out)
}

/// The three components as libjpeg's preprocessing leaves them, padded (see the module
/// documentation): luma `ceil(W/8)·8` × `ceil(H/16)·16`, chroma `ceil(W/16)·8` ×
/// `ceil(H/16)·8`.
struct Planes {
    y: Vec<u8>,
    cb: Vec<u8>,
    cr: Vec<u8>,
    y_stride: usize,
    c_stride: usize,
}

impl Planes {
    fn new(rgba: &[u8], w: usize, h: usize) -> Planes {
        let y_stride = w.div_ceil(8) * 8;
        let c_stride = w.div_ceil(16) * 8;
        let y_rows = h.div_ceil(16) * 16;
        let c_rows = h.div_ceil(16) * 8;
        let mut y = vec![0u8; y_stride * y_rows];
        let mut cb = vec![0u8; c_stride * c_rows];
        let mut cr = vec![0u8; c_stride * c_rows];
        // full-resolution Cb and Cr of a pair of rows, widened to 2·c_stride
        let wide = 2 * c_stride;
        let mut fcb = vec![0u16; 2 * wide];
        let mut fcr = vec![0u16; 2 * wide];
        for cy in 0..h.div_ceil(2) {
            for r in 0..2 {
                // an odd height's last row pairs with itself
                let row = (2 * cy + r).min(h - 1);
                let src = &rgba[row * w * 4..(row + 1) * w * 4];
                let yrow = &mut y[row * y_stride..(row + 1) * y_stride];
                let (rcb, rcr) = (
                    &mut fcb[r * wide..(r + 1) * wide],
                    &mut fcr[r * wide..(r + 1) * wide],
                );
                for (x, p) in src.chunks_exact(4).enumerate() {
                    let (l, b, rr) = rgb_to_ycc(p[0], p[1], p[2]);
                    yrow[x] = l;
                    rcb[x] = u16::from(b);
                    rcr[x] = u16::from(rr);
                }
                let (ly, lb, lr) = (yrow[w - 1], rcb[w - 1], rcr[w - 1]);
                yrow[w..].fill(ly);
                rcb[w..].fill(lb);
                rcr[w..].fill(lr);
            }
            for (full, plane) in [(&fcb, &mut cb), (&fcr, &mut cr)] {
                let (r0, r1) = full.split_at(wide);
                let out = &mut plane[cy * c_stride..(cy + 1) * c_stride];
                for (x, o) in out.iter_mut().enumerate() {
                    let bias = 1 + (x as u16 & 1);
                    let sum = r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1] + bias;
                    *o = (sum >> 2) as u8;
                }
            }
        }
        // rows past the image repeat the last
        for (plane, stride, rows) in [
            (&mut y, y_stride, h),
            (&mut cb, c_stride, h.div_ceil(2)),
            (&mut cr, c_stride, h.div_ceil(2)),
        ] {
            let (done, rest) = plane.split_at_mut(rows * stride);
            let last = &done[(rows - 1) * stride..];
            for row in rest.chunks_exact_mut(stride) {
                row.copy_from_slice(last);
            }
        }
        Planes {
            y,
            cb,
            cr,
            y_stride,
            c_stride,
        }
    }

    /// The 8×8 samples at (x, y) of component `c`, less 128, transposed (`out[column][row]`:
    /// [`fdct_islow`]'s first pass works on the rows as lanes).
    fn block(&self, c: usize, x: usize, y: usize, out: &mut [[i32; 8]; 8]) {
        let (plane, stride) = match c {
            0 => (&self.y, self.y_stride),
            1 => (&self.cb, self.c_stride),
            _ => (&self.cr, self.c_stride),
        };
        for r in 0..8 {
            let start = (y + r) * stride + x;
            let row: &[u8; 8] = plane[start..start + 8].try_into().unwrap_or(&[128; 8]);
            for (col, s) in out.iter_mut().zip(row) {
                col[r] = i32::from(*s) - 128;
            }
        }
    }
}

/// jccolor.c's `rgb_ycc_convert` (16-bit fixed point; luma rounds halves up, chroma down).
#[inline]
fn rgb_to_ycc(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = (19595 * r + 38470 * g + 7471 * b + (1 << 15)) >> 16;
    let cb = (-11059 * r - 21709 * g + 32768 * b + (128 << 16) + (1 << 15) - 1) >> 16;
    let cr = (32768 * r - 27439 * g - 5329 * b + (128 << 16) + (1 << 15) - 1) >> 16;
    // all three are 0-255 by construction
    (y as u8, cb as u8, cr as u8)
}

/// jfdctint.c's `jpeg_fdct_islow` of a block given transposed (`d[column][row]`), the result
/// in natural order (`d[v][u]`), scaled up by 8. Each pass is eight 1-D DCTs side by side
/// (lanes), which the compiler vectorizes; the first pass runs along the rows, as libjpeg's,
/// so the rounding is libjpeg's.
fn fdct_islow(d: &mut [[i32; 8]; 8]) {
    pass::<true>(d);
    transpose(d);
    pass::<false>(d);
}

fn transpose(d: &mut [[i32; 8]; 8]) {
    let t = *d;
    *d = std::array::from_fn(|i| std::array::from_fn(|j| t[j][i]));
}

/// One 1-D islow DCT pass over `d[0..8]` (the eight inputs), lane by lane.
#[inline(always)]
fn pass<const FIRST: bool>(d: &mut [[i32; 8]; 8]) {
    const CONST_BITS: i32 = 13;
    const PASS1_BITS: i32 = 2;
    const F0_298: i32 = 2446;
    const F0_390: i32 = 3196;
    const F0_541: i32 = 4433;
    const F0_765: i32 = 6270;
    const F0_899: i32 = 7373;
    const F1_175: i32 = 9633;
    const F1_501: i32 = 12299;
    const F1_847: i32 = 15137;
    const F1_961: i32 = 16069;
    const F2_053: i32 = 16819;
    const F2_562: i32 = 20995;
    const F3_072: i32 = 25172;
    let shift = if FIRST {
        CONST_BITS - PASS1_BITS
    } else {
        CONST_BITS + PASS1_BITS
    };
    let descale = |x: i32, n: i32| (x + (1 << (n - 1))) >> n;
    let [i0, i1, i2, i3, i4, i5, i6, i7] = *d;
    for l in 0..8 {
        let (tmp0, tmp7) = (i0[l] + i7[l], i0[l] - i7[l]);
        let (tmp1, tmp6) = (i1[l] + i6[l], i1[l] - i6[l]);
        let (tmp2, tmp5) = (i2[l] + i5[l], i2[l] - i5[l]);
        let (tmp3, tmp4) = (i3[l] + i4[l], i3[l] - i4[l]);
        let (tmp10, tmp13) = (tmp0 + tmp3, tmp0 - tmp3);
        let (tmp11, tmp12) = (tmp1 + tmp2, tmp1 - tmp2);
        if FIRST {
            d[0][l] = (tmp10 + tmp11) << PASS1_BITS;
            d[4][l] = (tmp10 - tmp11) << PASS1_BITS;
        } else {
            d[0][l] = descale(tmp10 + tmp11, PASS1_BITS);
            d[4][l] = descale(tmp10 - tmp11, PASS1_BITS);
        }
        let z1 = (tmp12 + tmp13) * F0_541;
        d[2][l] = descale(z1 + tmp13 * F0_765, shift);
        d[6][l] = descale(z1 - tmp12 * F1_847, shift);
        let (z1, z2, z3, z4) = (tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7);
        let z5 = (z3 + z4) * F1_175;
        let (tmp4, tmp5, tmp6, tmp7) = (tmp4 * F0_298, tmp5 * F2_053, tmp6 * F3_072, tmp7 * F1_501);
        let (z1, z2) = (-z1 * F0_899, -z2 * F2_562);
        let z3 = -z3 * F1_961 + z5;
        let z4 = -z4 * F0_390 + z5;
        d[7][l] = descale(tmp4 + z1 + z3, shift);
        d[5][l] = descale(tmp5 + z2 + z4, shift);
        d[3][l] = descale(tmp6 + z2 + z3, shift);
        d[1][l] = descale(tmp7 + z1 + z4, shift);
    }
}

/// A quantization table as `jpeg_set_quality` scales it (natural order) and libjpeg-turbo's
/// reciprocals of its divisors (jcdctmgr.c's `compute_reciprocal`).
struct Quant {
    table: [u8; 64],
    /// Natural order: libjpeg-turbo's reciprocal, rounding correction and scale of each
    /// divisor (its SIMD quantization's form: `((x + corr)·recip >> 16)·scale >> 16`).
    recip: [u32; 64],
    corr: [u32; 64],
    scale: [u32; 64],
}

impl Quant {
    fn new(base: &[u16; 64], quality: u8) -> Quant {
        let q = u32::from(quality.clamp(1, 100));
        let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
        let mut t = Quant {
            table: [0; 64],
            recip: [0; 64],
            corr: [0; 64],
            scale: [0; 64],
        };
        for (i, &b) in base.iter().enumerate() {
            // force_baseline: 1-255
            let v = ((u32::from(b) * scale + 50) / 100).clamp(1, 255);
            t.table[i] = v as u8;
            // the DCT's outputs are 8 times too large: divisors are 8·v, 8 to 2040
            let divisor = v << 3;
            let b = 31 - divisor.leading_zeros();
            let mut r = 16 + b;
            let mut fq = (1u32 << r) / divisor;
            let fr = (1u32 << r) % divisor;
            let mut c = divisor / 2;
            if fr == 0 {
                fq >>= 1;
                r -= 1;
            } else if fr <= divisor / 2 {
                c += 1;
            } else {
                fq += 1;
            }
            // (x + c)·fq >> r, as ((x + c)·fq >> 16)·2^(32 - r) >> 16 (r is 18 to 26): the
            // same floor, in 32 bits (x + c < 2^14, fq ≤ 2^16)
            t.recip[i] = fq;
            t.corr[i] = c;
            t.scale[i] = 1 << (32 - r);
        }
        t
    }

    /// A DCT'd block (natural order) quantized into zigzag order; returns the mask of the
    /// non-zero AC coefficients (bit k: the `k`th in zigzag order).
    fn quantize(&self, d: &[[i32; 8]; 8], zz: &mut [i32; 64]) -> u64 {
        let mut q = [0i32; 64];
        let d = d.as_flattened();
        for i in 0..64 {
            // branch-free, so that the loop vectorizes: |v|, then the sign back
            let sign = d[i] >> 31;
            let abs = ((d[i] ^ sign) - sign) as u32;
            let m = ((((abs + self.corr[i]) * self.recip[i]) >> 16) * self.scale[i]) >> 16;
            q[i] = (m as i32 ^ sign) - sign;
        }
        for (o, &n) in zz.iter_mut().zip(&ZIGZAG) {
            *o = q[n];
        }
        let mut mask = 0u64;
        for (k, v) in zz.iter().enumerate() {
            mask |= u64::from(*v != 0) << k;
        }
        mask & !1
    }
}

/// Canonical Huffman codes (Annex C) of a table: `(code, length)` by symbol.
struct Huffman {
    codes: [(u16, u8); 256],
}

impl Huffman {
    fn new(bits: &[u8; 16], vals: &[u8]) -> Huffman {
        let mut codes = [(0u16, 0u8); 256];
        let (mut code, mut k) = (0u16, 0usize);
        for (len, &n) in bits.iter().enumerate() {
            for _ in 0..n {
                codes[usize::from(vals[k])] = (code, len as u8 + 1);
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        Huffman { codes }
    }
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xff, marker]);
    // bodies here are at most 200 bytes
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

fn write_headers(out: &mut Vec<u8>, w: u32, h: u32, luma: &Quant, chroma: &Quant) {
    out.extend_from_slice(&[0xff, 0xd8]);
    segment(out, 0xe0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    for (id, q) in [(0u8, luma), (1, chroma)] {
        let mut body = vec![id];
        body.extend(ZIGZAG.iter().map(|&n| q.table[n]));
        segment(out, 0xdb, &body);
    }
    let (w, h) = (w as u16, h as u16);
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    segment(out, 0xc0, &sof);
    for (class_id, bits, vals) in [
        (0x00, &DC_LUMA_BITS, &DC_VALS[..]),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALS[..]),
        (0x01, &DC_CHROMA_BITS, &DC_VALS[..]),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALS[..]),
    ] {
        let mut body = vec![class_id];
        body.extend_from_slice(bits);
        body.extend_from_slice(vals);
        segment(out, 0xc4, &body);
    }
    segment(out, 0xda, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
}

/// The entropy-coded scan: bits gathered MSB first, 0xFF bytes stuffed with a 0x00.
struct BitWriter {
    out: Vec<u8>,
    /// The pending bits, the last `n` of `acc`.
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Appends the last `len` bits of `code` (at most 32 at a time).
    #[inline(always)]
    fn put(&mut self, code: u32, len: u32) {
        self.acc = (self.acc << len) | u64::from(code & (u32::MAX >> (32 - len)));
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            let word = (self.acc >> self.n) as u32;
            // no 0xFF byte among the four (the usual "has a zero byte" test on !word)
            let inv = !word;
            if inv.wrapping_sub(0x0101_0101) & !inv & 0x8080_8080 == 0 {
                self.out.extend_from_slice(&word.to_be_bytes());
            } else {
                for byte in word.to_be_bytes() {
                    self.out.push(byte);
                    if byte == 0xff {
                        self.out.push(0);
                    }
                }
            }
        }
    }

    /// A Huffman code and the `nbits` magnitude bits of `v` after it.
    #[inline(always)]
    fn symbol(&mut self, table: &Huffman, sym: u32, v: i32, nbits: u32) {
        let (code, len) = table.codes[(sym & 0xff) as usize];
        let len = u32::from(len);
        if nbits == 0 {
            self.put(u32::from(code), len);
        } else {
            // 16 + 11 bits at most
            let bits = (u32::from(code) << nbits) | (magnitude_bits(v) & ((1 << nbits) - 1));
            self.put(bits, len + nbits);
        }
    }

    /// One block's coefficients in zigzag order (`nonzero`: the mask of the non-zero ACs):
    /// the DC as a difference from `last_dc`, the ACs as zero runs and values (jchuff.c's
    /// `encode_one_block`).
    fn block(
        &mut self,
        zz: &[i32; 64],
        mut nonzero: u64,
        last_dc: &mut i32,
        dc: &Huffman,
        ac: &Huffman,
    ) {
        let diff = zz[0] - *last_dc;
        *last_dc = zz[0];
        let nbits = 32 - diff.unsigned_abs().leading_zeros();
        self.symbol(dc, nbits, diff, nbits);
        let mut last = 0u32;
        while nonzero != 0 {
            let k = nonzero.trailing_zeros();
            nonzero &= nonzero - 1;
            let mut run = k - last - 1;
            last = k;
            while run > 15 {
                self.put(u32::from(ac.codes[0xf0].0), u32::from(ac.codes[0xf0].1));
                run -= 16;
            }
            let v = zz[k as usize];
            let nbits = 32 - v.unsigned_abs().leading_zeros();
            self.symbol(ac, (run << 4) + nbits, v, nbits);
        }
        if last < 63 {
            self.symbol(ac, 0x00, 0, 0);
        }
    }

    /// The scan's last byte filled with 1 bits.
    fn finish(mut self) -> Vec<u8> {
        while self.n >= 8 {
            self.n -= 8;
            let byte = (self.acc >> self.n) as u8;
            self.out.push(byte);
            if byte == 0xff {
                self.out.push(0);
            }
        }
        if self.n > 0 {
            let byte = ((self.acc << (8 - self.n)) as u8) | (0xff >> self.n);
            self.out.push(byte);
            if byte == 0xff {
                self.out.push(0);
            }
        }
        self.out
    }
}

/// A coefficient's magnitude bits: the value itself when positive, else its one's complement
/// (`v - 1` in two's complement); only the low `nbits` are written.
#[inline]
fn magnitude_bits(v: i32) -> u32 {
    (if v < 0 { v - 1 } else { v }) as u32
}
