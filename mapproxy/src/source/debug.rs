//! `type: debug` (MapProxy's `DebugSource` in `source/__init__.py`, drawn as
//! `image/message.py` draws messages): a transparent image (white, alpha 0) with the query's bbox and
//! resolution as text in the upper left, `bbox: (minx, miny, maxx, maxy)` (Python's `repr`)
//! and `res: %.8f(%.8f)`. No network. The text is a bitmap font (embedded-graphics' 6×10),
//! not MapProxy's DejaVu Sans Mono.

use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};
use futures_util::future::BoxFuture;

use super::pyfmt::py_float_repr;
use super::{MapQuery, MapSource, SourceError, SourceImage};
use crate::image::{encode, ImageFormat, ImageOpts, RgbaImage};

/// The largest image drawn (MapProxy's default `max_output_pixels`).
const MAX_PIXELS: u64 = 4000 * 4000;

/// The debug source.
#[derive(Debug, Clone, Default)]
pub struct DebugSource;

impl DebugSource {
    pub fn new() -> DebugSource {
        DebugSource
    }

    /// The text drawn for `query`.
    pub fn text(query: &MapQuery) -> String {
        let b = query.bbox;
        let rx = (b[2] - b[0]) / f64::from(query.size.0.max(1));
        let ry = (b[3] - b[1]) / f64::from(query.size.1.max(1));
        format!(
            "bbox: ({}, {}, {}, {})\nres: {rx:.8}({ry:.8})",
            py_float_repr(b[0]),
            py_float_repr(b[1]),
            py_float_repr(b[2]),
            py_float_repr(b[3])
        )
    }

    /// The image for `query`, as RGBA.
    pub fn draw(query: &MapQuery) -> Result<RgbaImage, SourceError> {
        let (w, h) = query.size;
        if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PIXELS {
            return Err(SourceError::new(format!("invalid image size {w}x{h}")));
        }
        // MapProxy's `create_image` for a transparent image: white with alpha 0, so a cache
        // that is not transparent (RGB, as Pillow drops the alpha) stores black on white
        let mut img = RgbaImage::from_pixel(w, h, image::Rgba([255, 255, 255, 0]));
        draw_text(&mut img, &Self::text(query));
        Ok(img)
    }
}

/// Draw `text` in black at the top left of `img` (MapProxy's `message_image` layout: padding
/// 3, 5 px between lines); the debug source and the WMS in-image exceptions use it.
pub fn draw_text(img: &mut RgbaImage, text: &str) {
    let mut canvas = Canvas(std::mem::take(img));
    let style = MonoTextStyle::new(&FONT_6X10, Rgb888::BLACK);
    for (i, line) in text.lines().enumerate() {
        let y = 3 + i as i32 * (10 + 5);
        let _ = Text::with_baseline(line, Point::new(3, y), style, Baseline::Top).draw(&mut canvas);
    }
    *img = canvas.0;
}

struct Canvas(RgbaImage);

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(p.x), u32::try_from(p.y)) {
                if x < self.0.width() && y < self.0.height() {
                    self.0
                        .put_pixel(x, y, image::Rgba([c.r(), c.g(), c.b(), 255]));
                }
            }
        }
        Ok(())
    }
}

impl MapSource for DebugSource {
    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async move {
            let img = Self::draw(query)?;
            let mut opts = ImageOpts::new(ImageFormat::png());
            opts.transparent = true;
            let data = encode(&img, &opts).map_err(|e| SourceError::new(e.to_string()))?;
            Ok(SourceImage::drawn_png(data))
        })
    }
}
