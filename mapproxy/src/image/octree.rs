//! Pillow's `FASTOCTREE` quantizer, the one MapProxy's `quantize` uses for every paletted PNG
//! (`img.quantize(colors, Image.FASTOCTREE)`), so that our palettes, indices and PNG bytes are
//! Pillow's. Written from the algorithm of Pillow's `libImaging/QuantOctree.c` (by MapProxy's
//! author) and its caller `ImagingQuantize` (`Quant.c`); no quantizer crate implements it, and
//! any other quantizer gives other colours.
//!
//! The colours are counted in buckets of a fine cube (4×4×4 bits of R, G, B; with alpha
//! 3×4×3×3 bits of R, G, B, A) and a coarse one made from it (2 bits each). The palette is the
//! coarse buckets still used after taking out the most used fine buckets, sorted by their
//! pixel counts, then those fine buckets, also by count; each entry is its bucket's average
//! colour. A pixel's index is its fine bucket's entry, else its coarse bucket's.
//!
//! What must match bit for bit: bucket averages are computed in `f32` and truncated, as the C
//! code's `float` division; the two sorts are stable (glibc's `qsort` is a merge sort for
//! these arrays), by count descending, ties in cube order; fully transparent pixels all take
//! the colour of the first one (`Quant.c`); the palette has `colors` entries, unused ones
//! `(0, 0, 0, 0)`.

use image::RgbaImage;

/// One bucket: its pixel count (in lookup cubes: a palette index) and channel sums.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    count: u32,
    sums: [u64; 4],
}

impl Bucket {
    fn add(&mut self, other: &Bucket) {
        self.count = self.count.wrapping_add(other.count);
        for (s, o) in self.sums.iter_mut().zip(other.sums) {
            *s = s.wrapping_add(o);
        }
    }

    /// The average colour, each channel `(int)(sum / (float)count)` clipped to 0-255.
    fn average(&self) -> [u8; 4] {
        if self.count == 0 {
            return [0; 4];
        }
        let n = self.count as f32;
        self.sums
            .map(|s| ((s as f32 / n) as i32).clamp(0, 255) as u8)
    }
}

/// A cube of buckets, `bits` per channel (R, G, B, A).
struct Cube {
    bits: [u32; 4],
    buckets: Vec<Bucket>,
}

impl Cube {
    fn new(bits: [u32; 4]) -> Cube {
        Cube {
            bits,
            buckets: vec![Bucket::default(); 1 << bits.iter().sum::<u32>()],
        }
    }

    /// The bucket index of cube coordinates (R highest, A lowest).
    fn pos(&self, c: [u32; 4]) -> usize {
        let b = self.bits;
        ((c[0] << (b[1] + b[2] + b[3])) | (c[1] << (b[2] + b[3])) | (c[2] << b[3]) | c[3]) as usize
    }

    /// The bucket index of a colour: each channel's top bits (none of a channel of 0 bits:
    /// a byte shifted by 8 is 0, as in the C code's unsigned shift).
    fn pos_of(&self, p: [u8; 4]) -> usize {
        self.pos(std::array::from_fn(|i| {
            u32::from(p[i]) >> (8 - self.bits[i])
        }))
    }

    fn used(&self) -> usize {
        self.buckets.iter().filter(|b| b.count > 0).count()
    }

    /// This cube's buckets added into a new cube of `bits` (coarser: buckets merged; finer:
    /// each bucket's values in every finer bucket inside it).
    fn resized(&self, bits: [u32; 4]) -> Cube {
        let mut out = Cube::new(bits);
        let mut src_shift = [0u32; 4];
        let mut dst_shift = [0u32; 4];
        let mut width = [0u32; 4];
        for i in 0..4 {
            if self.bits[i] > bits[i] {
                dst_shift[i] = self.bits[i] - bits[i];
                width[i] = 1 << self.bits[i];
            } else {
                src_shift[i] = bits[i] - self.bits[i];
                width[i] = 1 << bits[i];
            }
        }
        for r in 0..width[0] {
            for g in 0..width[1] {
                for b in 0..width[2] {
                    for a in 0..width[3] {
                        let c = [r, g, b, a];
                        let src = self.pos(std::array::from_fn(|i| c[i] >> src_shift[i]));
                        let dst = out.pos(std::array::from_fn(|i| c[i] >> dst_shift[i]));
                        let v = self.buckets[src];
                        out.buckets[dst].add(&v);
                    }
                }
            }
        }
        out
    }

    /// The buckets by count, most used first, ties in cube order, at least `n` of them. The
    /// unused buckets sort last and are all alike (no pixels, no sums), so only the used
    /// ones are sorted and empty ones added up to `n`.
    fn sorted(&self, n: usize) -> Vec<Bucket> {
        let mut v: Vec<Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.count > 0)
            .copied()
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.count));
        if v.len() < n {
            v.resize(n, Bucket::default());
        }
        v
    }

    /// Takes each of `buckets` out of the bucket its average colour falls in.
    fn subtract(&mut self, buckets: &[Bucket]) {
        for s in buckets.iter().filter(|s| s.count != 0) {
            let i = self.pos_of(s.average());
            let m = &mut self.buckets[i];
            m.count = m.count.wrapping_sub(s.count);
            for (d, v) in m.sums.iter_mut().zip(s.sums) {
                *d = d.wrapping_sub(v);
            }
        }
    }

    /// Palette entries `offset..offset + n` put into the buckets of their colours (the lower
    /// index wins where two share one).
    fn set_lookup(&mut self, palette: &[Bucket], n: usize, offset: usize) {
        for i in (offset..offset + n).rev() {
            let pos = self.pos_of(palette[i].average());
            // at most 256 entries
            self.buckets[pos].count = i as u32;
        }
    }
}

/// Bits of the fine and the coarse cube, R, G, B, A.
const LEVELS: [[u32; 4]; 2] = [[4, 4, 4, 0], [2, 2, 2, 0]];
const LEVELS_ALPHA: [[u32; 4]; 2] = [[3, 4, 3, 3], [2, 2, 2, 2]];

/// `img` quantized to a palette of `colors` (1-256) entries and each pixel's index, as
/// Pillow's `quantize(colors, FASTOCTREE)` of an RGBA image (`alpha`) or of its RGB
/// conversion (alpha ignored, entries opaque).
pub fn quantize(img: &RgbaImage, colors: usize, alpha: bool) -> (Vec<[u8; 4]>, Vec<u8>) {
    let colors = colors.clamp(1, 256);
    let [fine_bits, coarse_bits] = if alpha { LEVELS_ALPHA } else { LEVELS };
    let runs = runs(img, alpha);
    let mut fine = Cube::new(fine_bits);
    // a run of equal pixels (most of a map tile) is added at once
    for &(p, n) in &runs {
        let p = p.to_le_bytes();
        let i = fine.pos_of(p);
        let b = &mut fine.buckets[i];
        b.count = b.count.wrapping_add(n);
        for (s, v) in b.sums.iter_mut().zip(p) {
            *s += u64::from(v) * u64::from(n);
        }
    }
    let mut coarse = fine.resized(coarse_bits);
    let mut n_coarse = coarse.used().min(colors);
    let mut n_fine = colors - n_coarse;
    let fine_sorted = fine.sorted(colors);
    coarse.subtract(&fine_sorted[..n_fine]);
    // coarse buckets emptied by the fine colours leave room for more fine ones
    while n_coarse > coarse.used() {
        let done = n_fine;
        n_coarse = coarse.used();
        n_fine = colors - n_coarse;
        coarse.subtract(&fine_sorted[done..n_fine]);
    }
    let mut palette: Vec<Bucket> = coarse.sorted(n_coarse)[..n_coarse].to_vec();
    palette.extend_from_slice(&fine_sorted[..n_fine]);
    let mut coarse_lookup = Cube::new(coarse_bits);
    coarse_lookup.set_lookup(&palette, n_coarse, 0);
    let mut lookup = coarse_lookup.resized(fine_bits);
    lookup.set_lookup(&palette, n_fine, n_coarse);
    let mut indices = vec![0u8; img.as_raw().len() / 4];
    let mut at = 0;
    for &(p, n) in &runs {
        let i = lookup.buckets[lookup.pos_of(p.to_le_bytes())].count as u8;
        let n = n as usize;
        if let Some(run) = indices.get_mut(at..at + n) {
            run.fill(i);
        }
        at += n;
    }
    (palette.iter().map(Bucket::average).collect(), indices)
}

/// The pixels as `ImagingQuantize` gives them to the quantizer, in runs of equal ones (a
/// pixel as its little-endian RGBA word, the run's length): with alpha, every fully
/// transparent pixel takes the colour of the first one; without, alpha is 255. One pass over
/// the image, comparing words (most of a map is runs: a background, an area's fill).
fn runs(img: &RgbaImage, alpha: bool) -> Vec<(u32, u32)> {
    let mut first_clear: Option<u32> = None;
    let mut word = |b: &[u8]| {
        let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if !alpha {
            w | 0xff00_0000
        } else if w >> 24 != 0 {
            w
        } else {
            *first_clear.get_or_insert(w & 0x00ff_ffff)
        }
    };
    let mut out = Vec::new();
    let mut px = img.as_raw().chunks_exact(4);
    let Some(first) = px.next() else {
        return out;
    };
    let (mut cur, mut n) = (word(first), 1u32);
    for b in px {
        let w = word(b);
        if w == cur {
            n += 1;
        } else {
            out.push((cur, n));
            (cur, n) = (w, 1);
        }
    }
    out.push((cur, n));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pillow 13 (MapProxy 7's), `quantize(256, FASTOCTREE)`: a white image with a red row and
    /// a transparent blue one gives white, the blue (first of the two ties in cube order), red,
    /// then unused black entries.
    #[test]
    fn few_colours_by_count_then_cube_order() {
        let mut img = RgbaImage::from_pixel(256, 256, image::Rgba([255, 255, 255, 255]));
        for x in 0..256 {
            img.put_pixel(x, 10, image::Rgba([200, 0, 0, 255]));
            img.put_pixel(x, 20, image::Rgba([0, 0, 200, 0]));
        }
        let (palette, indices) = quantize(&img, 256, true);
        assert_eq!(palette.len(), 256);
        assert_eq!(
            &palette[..4],
            &[
                [255, 255, 255, 255],
                [0, 0, 200, 0],
                [200, 0, 0, 255],
                [0, 0, 0, 0]
            ]
        );
        assert_eq!(indices[0], 0);
        assert_eq!(indices[10 * 256], 2);
        assert_eq!(indices[20 * 256], 1);
        let (palette, _) = quantize(&img, 256, false);
        assert_eq!(
            &palette[..3],
            &[[255, 255, 255, 255], [0, 0, 200, 255], [200, 0, 0, 255]]
        );
    }
}
