//! A source's `on_error` (MapProxy's `HTTPSourceErrorHandler`, `mapproxy/source/error.py`):
//! for an HTTP status (or `other`: any other status, and no response at all), answer with an
//! image of one colour instead of an error, stored in the cache only with `cache: true`.

use bytes::Bytes;

use super::{SourceError, SourceImage};
use crate::image::{encode, ImageFormat, ImageOpts, RgbaImage};

/// The largest image `on_error` draws (MapProxy's default `max_output_pixels`, 4000×4000).
const MAX_PIXELS: u64 = 4000 * 4000;

/// What to answer for one status.
#[derive(Debug, Clone, PartialEq)]
pub struct OnErrorResponse {
    /// RGBA; `response: transparent` is (255, 255, 255, 0), a colour without alpha is opaque.
    pub color: [u8; 4],
    /// `cache:` (default false): store the tiles made from this image.
    pub cache: bool,
    /// `authorize_stale:` (default false): serve a stale cached tile instead, when there is
    /// one (kept for the tile manager; no tile expires yet).
    pub authorize_stale: bool,
}

impl OnErrorResponse {
    pub fn transparent(cache: bool) -> OnErrorResponse {
        OnErrorResponse {
            color: [255, 255, 255, 0],
            cache,
            authorize_stale: false,
        }
    }
}

/// The `on_error` table of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OnError {
    by_status: Vec<(u16, OnErrorResponse)>,
    other: Option<OnErrorResponse>,
}

impl OnError {
    pub fn new() -> OnError {
        OnError::default()
    }

    /// Adds the answer for `status` (`None`: `other`).
    pub fn add(&mut self, status: Option<u16>, response: OnErrorResponse) {
        match status {
            Some(s) => {
                self.by_status.retain(|(k, _)| *k != s);
                self.by_status.push((s, response));
            }
            None => self.other = Some(response),
        }
    }

    /// The answer for a failure with `status` (`None`: no HTTP status, e.g. no response),
    /// if one is configured.
    pub fn response(&self, status: Option<u16>) -> Option<&OnErrorResponse> {
        status
            .and_then(|s| self.by_status.iter().find(|(k, _)| *k == s).map(|(_, r)| r))
            .or(self.other.as_ref())
    }

    /// The image for a failure with `status` in a query of `size`, if one is configured.
    pub fn handle(
        &self,
        status: Option<u16>,
        size: (u32, u32),
    ) -> Option<Result<SourceImage, SourceError>> {
        let r = self.response(status)?;
        Some(blank_image(r.color, size).map(|data| SourceImage {
            data,
            format: Some(ImageFormat::png()),
            cacheable: r.cache,
            drawn: true,
        }))
    }
}

/// A PNG of one colour.
pub(crate) fn blank_image(color: [u8; 4], (w, h): (u32, u32)) -> Result<Bytes, SourceError> {
    if u64::from(w) * u64::from(h) > MAX_PIXELS || w == 0 || h == 0 {
        return Err(SourceError::new(format!("invalid image size {w}x{h}")));
    }
    let img = RgbaImage::from_pixel(w, h, image::Rgba(color));
    let mut opts = ImageOpts::new(ImageFormat::png());
    opts.transparent = color[3] < 255;
    encode(&img, &opts).map_err(|e| SourceError::new(e.to_string()))
}
