//! A cache's `watermark` (MapProxy's `tilefilter.py` `watermark_filter` and
//! `image/message.py` `WatermarkImage`): text drawn on every tile the cache makes, before it
//! is stored (tiles read from the cache are not drawn on again).
//!
//! - Placement by the tile's coordinate in its grid (`tile_watermark_placement`): without
//!   `spacing`, tiles of even rows get the text centred (`c`: left edge at `w // 2 - tw // 2`;
//!   `_place_boxes` centres the ink box, `h // 2 - th // 2`, and Pillow then draws the text
//!   with its top there plus the ink's top offset, so the ink sits that much lower), tiles of
//!   odd rows get it twice, centred on the left and on the right edge (`cL`: `-tw // 2`,
//!   `cR`: `w - tw // 2`), so the halves meet on the next tile; with `spacing: wide` only
//!   tiles whose column and row differ in parity get it, centred.
//! - `color` (default `[128, 128, 128]`) with alpha `opacity` (default 30) is drawn on a
//!   transparent image that is then pasted onto the tile through its own alpha, as Pillow's
//!   `paste(img, (0, 0), img)`: every channel, alpha included, becomes
//!   `text * a + tile * (1 - a)`.
//! - Text: MapProxy draws DejaVu Sans at `font_size` (default 24) with FreeType; here the
//!   text is embedded-graphics' 10×20 monospace font scaled (bilinear) so a character is
//!   `0.6 × font_size` wide, about DejaVu Sans' average advance. The glyphs and their
//!   anti-aliasing differ from Pillow's; position, size of the text box, colour, opacity and
//!   spacing follow MapProxy's rules. Lines (`\n`) are 3 px apart.

use embedded_graphics::mono_font::{ascii::FONT_10X20, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use image::{GrayImage, Luma, RgbaImage};

use crate::grid::TileCoord;

/// A cache's `watermark`.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// The text's coverage, 0-255, as drawn once (every tile uses it).
    mask: GrayImage,
    /// The first row of `mask` with ink and the row after the last (Pillow's `textbbox`
    /// top and bottom, relative to the text's top).
    ink_rows: (i64, i64),
    /// `color` and `opacity`.
    rgba: [u8; 4],
    /// `spacing: wide`.
    wide: bool,
}

/// Where a tile gets the text (`tile_watermark_placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Centre,
    /// Centred on the left and on the right edge.
    Both,
}

impl Watermark {
    /// `text` (not empty) in `color` at `opacity` (0-255), `font_size` pixels, `wide` spacing.
    /// A text whose drawing would be over [`MAX_TEXT_SIDE`] pixels wide or high is an error
    /// (the message says how large): it would take that much memory, and time on every tile,
    /// for a text no tile can show.
    pub fn new(
        text: &str,
        font_size: f64,
        color: [u8; 3],
        opacity: u8,
        wide: bool,
    ) -> Result<Watermark, String> {
        let mask = text_mask(text, font_size)?;
        let inked = |y: &u32| (0..mask.width()).any(|x| mask.get_pixel(x, *y).0[0] > 0);
        let top = (0..mask.height()).find(inked).unwrap_or(0);
        let bottom = (0..mask.height()).rev().find(inked).map_or(0, |y| y + 1);
        Ok(Watermark {
            ink_rows: (i64::from(top), i64::from(bottom)),
            mask,
            rgba: [color[0], color[1], color[2], opacity],
            wide,
        })
    }

    fn placement(&self, (x, y, _): TileCoord) -> Option<Placement> {
        if !self.wide {
            return Some(if y.rem_euclid(2) == 0 {
                Placement::Centre
            } else {
                Placement::Both
            });
        }
        (y.rem_euclid(2) != x.rem_euclid(2)).then_some(Placement::Centre)
    }

    /// Draws the watermark on the tile at `coord`.
    pub fn draw(&self, tile: &mut RgbaImage, coord: TileCoord) {
        let Some(placement) = self.placement(coord) else {
            return;
        };
        let (w, h) = (i64::from(tile.width()), i64::from(tile.height()));
        let (top, bottom) = self.ink_rows;
        let (tw, th) = (i64::from(self.mask.width()), bottom - top);
        // `_place_boxes` centres the text's ink box (Python's floor division), and the text is
        // then drawn with its top at that offset plus the box's top: the ink lands `top`
        // lower than centred, as MapProxy draws it
        let y = h.div_euclid(2) - th.div_euclid(2) + top;
        let xs: &[i64] = match placement {
            Placement::Centre => &[w.div_euclid(2) - tw.div_euclid(2)],
            Placement::Both => &[(-tw).div_euclid(2), w - tw.div_euclid(2)],
        };
        // the text image: the colour with alpha coverage × opacity (the left and right copies
        // do not overlap on a tile wider than the text)
        let mut layer: Vec<(u32, u32, u8)> = Vec::new();
        for &x in xs {
            for (mx, my, Luma([c])) in self.mask.enumerate_pixels() {
                let (px, py) = (x + i64::from(mx), y + i64::from(my));
                if *c == 0 || px < 0 || py < 0 || px >= w || py >= h {
                    continue;
                }
                let a = (u32::from(*c) * u32::from(self.rgba[3]) + 127) / 255;
                // in range: both fit in u32
                layer.push((px as u32, py as u32, a as u8));
            }
        }
        for (px, py, a) in layer {
            let src = [self.rgba[0], self.rgba[1], self.rgba[2], a];
            let dst = tile.get_pixel_mut(px, py);
            let m = u32::from(a);
            for (d, s) in dst.0.iter_mut().zip(src) {
                *d = ((u32::from(s) * m + u32::from(*d) * (255 - m) + 127) / 255) as u8;
            }
        }
    }
}

/// The widest and highest text drawing a watermark may have, in pixels (MapProxy draws any,
/// clipped to the tile; 64 times a 256-pixel tile is far past any tile's view).
pub const MAX_TEXT_SIDE: u64 = 16_384;

/// The text's coverage: the lines in the 10×20 font, scaled to `font_size`.
fn text_mask(text: &str, font_size: f64) -> Result<GrayImage, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let cols = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let rows = lines.len().max(1);
    let scale = (font_size.clamp(1.0, 1000.0) * 0.6) / 10.0;
    // the drawing's size, checked before anything is drawn (the unscaled canvas is at most
    // 1/0.06 times as large in each direction)
    let side = |px: usize| (px as f64 * scale).round() as u64;
    let (w, h) = (side(cols * 10), side(rows * 20) + 3 * (rows as u64 - 1));
    if w > MAX_TEXT_SIDE || h > MAX_TEXT_SIDE {
        return Err(format!(
            "the text at font_size {} would be drawn {w}×{h} pixels; at most {MAX_TEXT_SIDE} each way (a shorter text, fewer lines or a smaller font_size)",
            crate::source::py_float_repr(font_size)
        ));
    }
    let mut canvas = Mask(GrayImage::new(
        u32::try_from(cols * 10).unwrap_or(u32::MAX),
        u32::try_from(rows * 20).unwrap_or(u32::MAX),
    ));
    let style = MonoTextStyle::new(&FONT_10X20, BinaryColor::On);
    for (i, line) in lines.iter().enumerate() {
        let y = i32::try_from(i * 20).unwrap_or(i32::MAX);
        let _ = Text::with_baseline(line, Point::new(0, y), style, Baseline::Top).draw(&mut canvas);
    }
    let w = ((f64::from(canvas.0.width()) * scale).round() as u32).max(1);
    let line_h = ((20.0 * scale).round() as u32).max(1);
    let scaled = image::imageops::resize(
        &canvas.0,
        w,
        line_h * u32::try_from(rows).unwrap_or(1),
        image::imageops::FilterType::Triangle,
    );
    if rows == 1 {
        return Ok(scaled);
    }
    // MapProxy's `linespacing` of 3 pixels between lines
    let spaced_h = line_h * rows as u32 + 3 * (rows as u32 - 1);
    let mut out = GrayImage::new(w, spaced_h);
    for r in 0..rows as u32 {
        for y in 0..line_h {
            for x in 0..w {
                out.put_pixel(
                    x,
                    r * (line_h + 3) + y,
                    *scaled.get_pixel(x, r * line_h + y),
                );
            }
        }
    }
    Ok(out)
}

struct Mask(GrayImage);

impl OriginDimensions for Mask {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Mask {
    type Color = BinaryColor;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y)) {
                if c.is_on() && x < self.0.width() && y < self.0.height() {
                    self.0.put_pixel(x, y, Luma([255]));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(wm: &Watermark, coord: TileCoord) -> Vec<(u32, u32)> {
        let mut t = RgbaImage::from_pixel(256, 256, image::Rgba([255, 255, 255, 255]));
        wm.draw(&mut t, coord);
        t.enumerate_pixels()
            .filter(|(_, _, p)| p.0 != [255, 255, 255, 255])
            .map(|(x, y, _)| (x, y))
            .collect()
    }

    #[test]
    fn placement_follows_mapproxy() {
        let wm = Watermark::new("mapproxy", 24.0, [128, 128, 128], 30, false).expect("fits");
        // 8 characters of 14.4 px: 115 px wide, 29 px high
        assert_eq!(wm.mask.dimensions(), (115, 29));
        // even row: centred
        let even = drawn(&wm, (0, 0, 3));
        let (minx, maxx) = (
            even.iter().map(|p| p.0).min().unwrap_or(0),
            even.iter().map(|p| p.0).max().unwrap_or(0),
        );
        assert!(minx >= 128 - 57 && maxx < 128 - 57 + 115, "{minx} {maxx}");
        let (miny, maxy) = (
            even.iter().map(|p| p.1).min().unwrap_or(0),
            even.iter().map(|p| p.1).max().unwrap_or(0),
        );
        // MapProxy's rule: the ink box centred, then lowered by its top (its ink from
        // `128 - th // 2 + 2 * top` to `128 - th // 2 + top + bottom`)
        let (top, bottom) = wm.ink_rows;
        let y_off = 128 - (bottom - top) / 2;
        assert_eq!(
            (i64::from(miny), i64::from(maxy) + 1),
            (y_off + 2 * top, y_off + top + bottom)
        );
        // odd row: halves at both edges, nothing in the middle
        let odd = drawn(&wm, (0, 1, 3));
        assert!(odd.iter().any(|p| p.0 < 58) && odd.iter().any(|p| p.0 >= 256 - 58));
        assert!(odd.iter().all(|p| p.0 < 58 || p.0 >= 256 - 58));
        // wide: only where column and row parity differ
        let wide = Watermark::new("mapproxy", 24.0, [128, 128, 128], 30, true).expect("fits");
        assert!(drawn(&wide, (0, 0, 3)).is_empty());
        assert!(drawn(&wide, (1, 1, 3)).is_empty());
        assert!(!drawn(&wide, (1, 0, 3)).is_empty());
    }

    #[test]
    fn text_is_pasted_through_its_alpha() {
        // scale 1: the font's own pixels, full coverage
        let size = 100.0 / 6.0;
        let wm = Watermark::new("X", size, [0, 0, 0], 255, false).expect("fits");
        let mut t = RgbaImage::from_pixel(256, 256, image::Rgba([200, 100, 50, 0]));
        wm.draw(&mut t, (0, 0, 0));
        // full coverage at full opacity: the text colour, alpha 255
        assert!(t.pixels().any(|p| p.0 == [0, 0, 0, 255]));
        let wm = Watermark::new("X", size, [0, 0, 0], 30, false).expect("fits");
        let mut t = RgbaImage::from_pixel(256, 256, image::Rgba([200, 200, 200, 255]));
        wm.draw(&mut t, (0, 0, 0));
        // 30/255 of black over grey: 200 * 225 / 255 = 176; the alpha too is mixed, as
        // Pillow's paste does (checked: Pillow gives (176, 176, 176, 229))
        assert!(t.pixels().any(|p| p.0 == [176, 176, 176, 229]), "faded");
        assert!(t.pixels().all(|p| p.0[0] >= 176));
    }

    #[test]
    fn a_text_too_large_to_draw_is_an_error() {
        // 100 characters at font_size 1000: 60,000 pixels wide
        let e =
            Watermark::new(&"X".repeat(100), 1000.0, [0, 0, 0], 30, false).expect_err("too wide");
        assert!(e.contains("60000×1200 pixels"), "{e}");
        let tall = vec!["X"; 1000].join("\n");
        let e = Watermark::new(&tall, 24.0, [0, 0, 0], 30, false).expect_err("too high");
        assert!(e.contains("14×31797 pixels"), "{e}");
        // a long attribution at a large size still fits
        Watermark::new("© OpenStreetMap contributors", 200.0, [0, 0, 0], 30, false).expect("fits");
    }
}
