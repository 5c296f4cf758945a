//! Several sources of one cache (MapProxy's `caches.NAME.sources: [a, b]`): each source is
//! asked for the same map, and the images are laid over each other in the order of the list,
//! the first at the bottom (MapProxy's `LayerMerger`: later layers are pasted with their
//! alpha over the earlier ones). A failing source fails the whole image, as in MapProxy's
//! tile creation; the result is cacheable only when every part is. A [`super::DummySource`]
//! (a `seed_only` source when not seeding) is left out, as MapProxy's `_query_sources` skips
//! a source that raises `BlankImageError` (`cache/tile_creator.py:140-153`); with all left
//! out the merge is a blank image that is stored (`image/merge.py:61-62`: a cacheable
//! `BlankImageResult`).

use std::sync::Arc;

use futures_util::future::{join_all, BoxFuture};

use super::{MapQuery, MapSource, SourceError, SourceImage};
use crate::image::{decode, encode, ImageOpts, RgbaImage};

/// The sources of one cache, merged.
pub struct MergedSource {
    sources: Vec<Arc<dyn MapSource>>,
    /// How the merged image is encoded.
    out: ImageOpts,
}

impl MergedSource {
    /// `sources` merged in order, the result encoded with `out`.
    pub fn new(sources: Vec<Arc<dyn MapSource>>, out: ImageOpts) -> MergedSource {
        MergedSource { sources, out }
    }
}

impl MapSource for MergedSource {
    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async move {
            let parts = join_all(
                self.sources
                    .iter()
                    .filter(|s| !s.blank_for(query))
                    .map(|s| s.get_map(query)),
            )
            .await;
            let (w, h) = query.size;
            // the background: transparent, or MapProxy's default white for opaque images
            let bg = if query.transparent {
                [255, 255, 255, 0]
            } else {
                [255, 255, 255, 255]
            };
            let mut out = RgbaImage::from_pixel(w, h, image::Rgba(bg));
            let mut cacheable = true;
            for part in parts {
                let part = match part {
                    // nothing there (a cache used as a source without the tile): left out,
                    // as MapProxy's get_map_from_source (cache/tile_creator.py:140-145)
                    Err(e) if e.blank => continue,
                    other => other?,
                };
                cacheable &= part.cacheable;
                let img = decode(&part.data).map_err(|e| {
                    SourceError::new(format!("cannot decode a source's image: {e}"))
                })?;
                image::imageops::overlay(&mut out, &img, 0, 0);
            }
            let data = encode(&out, &self.out)
                .map_err(|e| SourceError::new(format!("cannot encode the merged image: {e}")))?;
            Ok(SourceImage {
                data,
                format: Some(self.out.format.clone()),
                cacheable,
                drawn: true,
            })
        })
    }
}
