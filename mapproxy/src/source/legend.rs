//! Legends of WMS layers (MapProxy's `WMSLegendSource`, `WMSLegendClient`,
//! `WMSLegendURLClient`, `cache/legend.py`, `image/merge.py` `concat_legends`).
//!
//! A legend source has one client per upstream layer (`wms_opts.legendgraphic`: a
//! GetLegendGraphic per layer of `req.layers`) or one static URL (`wms_opts.legendurl`, a
//! layer's `legendurl`; `http(s)://` or `file://`, relative `file://` paths from the YAML's
//! directory). Their images are stacked (the last on top, as `concat_legends`) and stored
//! as MapProxy stores them: `<globals.cache.base_dir>/legends/<md5(identifier + str(scale))>.png`,
//! the identifier being each client's URL followed by its layer; a static legend is stored
//! once for every scale. A legend made while a client failed is answered but not stored.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use tokio::sync::OnceCell;

use super::http::{content_type, SourceHttp};
use super::{py_float_repr, SourceError, WmsSource};
use crate::image::{decode, encode, ImageFormat, ImageOpts, RgbaImage};

/// Where a legend image comes from.
pub enum LegendClient {
    /// GetLegendGraphic of one upstream layer.
    Wms {
        source: Arc<WmsSource>,
        layer: String,
    },
    /// A static image (`http(s)://...`), or a local file (`file://`).
    Url {
        url: String,
        http: SourceHttp,
    },
    File {
        url: String,
        path: PathBuf,
    },
}

impl LegendClient {
    /// `(url, layer)` of MapProxy's `identifier`.
    fn identifier(&self) -> String {
        match self {
            LegendClient::Wms { source, layer } => format!("{}{layer}", source.conf().url),
            LegendClient::Url { url, .. } | LegendClient::File { url, .. } => url.clone(),
        }
    }

    async fn get(&self, scale: Option<f64>) -> Result<Bytes, SourceError> {
        match self {
            LegendClient::Wms { source, layer } => source.get_legend(layer, scale).await,
            LegendClient::Url { url, http } => {
                let resp = http.open(url).await.map_err(SourceError::from)?;
                if let Some(ct) = content_type(resp.headers()) {
                    if !ct.starts_with("image/") {
                        return Err(SourceError::new("no image returned from static LegendURL"));
                    }
                }
                Ok(resp.into_body())
            }
            LegendClient::File { path, .. } => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path))
                    .await
                    .map_err(|e| SourceError::new(e.to_string()))?
                    .map(Bytes::from)
                    .map_err(|e| SourceError::new(format!("legend file: {e}")))
            }
        }
    }
}

/// The legend of one source (MapProxy's `WMSLegendSource`).
pub struct LegendSource {
    clients: Vec<LegendClient>,
    identifier: String,
    cache_dir: PathBuf,
    /// A static legend: the same image for every scale.
    is_static: bool,
    size: OnceCell<(u32, u32)>,
}

impl LegendSource {
    /// A legend of `clients`, cached in `cache_dir` (`<base_dir>/legends`).
    pub fn new(clients: Vec<LegendClient>, cache_dir: PathBuf, is_static: bool) -> LegendSource {
        let identifier = clients.iter().map(LegendClient::identifier).collect();
        LegendSource {
            clients,
            identifier,
            cache_dir,
            is_static,
            size: OnceCell::new(),
        }
    }

    /// The cache file of the legend at `scale` (MapProxy's `legend_hash`: `str(scale)`).
    pub fn cache_file(&self, scale: Option<f64>) -> PathBuf {
        let scale = if self.is_static { None } else { scale };
        let mut md5 = Md5::new();
        md5.update(self.identifier.as_bytes());
        md5.update(
            scale
                .map_or_else(|| "None".to_string(), py_float_repr)
                .as_bytes(),
        );
        self.cache_dir.join(format!("{:x}.png", md5.finalize()))
    }

    /// The legend image (PNG bytes): from the cache, else from the clients, stacked.
    pub async fn get_legend(&self, scale: Option<f64>) -> Result<Bytes, SourceError> {
        let file = self.cache_file(scale);
        let scale = if self.is_static { None } else { scale };
        let f = file.clone();
        if let Ok(Ok(data)) = tokio::task::spawn_blocking(move || std::fs::read(&f)).await {
            return Ok(Bytes::from(data));
        }
        let results =
            futures_util::future::join_all(self.clients.iter().map(|c| c.get(scale))).await;
        let mut legends = Vec::new();
        let mut failed = false;
        for r in results {
            match r {
                Ok(b) => legends.push(b),
                Err(e) => {
                    failed = true;
                    log::error!(target: "mapproxy.source.wms", "legend: {e}");
                }
            }
        }
        let png = if let [one] = legends.as_slice() {
            // one image: stored as it came (MapProxy's client result has the format asked
            // for, so `as_buffer` keeps its buffer: cache/legend.py:67, client/wms.py:199-206,
            // image/__init__.py:240-257)
            one.clone()
        } else {
            Self::stack(legends).await?
        };
        if !failed {
            let data = png.clone();
            let dir = self.cache_dir.clone();
            let stored = tokio::task::spawn_blocking(move || {
                crate::cache::atomic_write::write_atomic(&file, &data, None, || {
                    std::fs::create_dir_all(&dir)
                })
            })
            .await;
            if let Ok(Err(e)) = stored {
                log::warn!(target: "mapproxy.cache", "could not store legend: {e}");
            }
        }
        Ok(png)
    }

    /// Several images (or none) stacked (`concat_legends`), as a 32 bit PNG (MapProxy stores
    /// the new image with `ImageOptions(format='image/png')`: no palette).
    async fn stack(legends: Vec<Bytes>) -> Result<Bytes, SourceError> {
        tokio::task::spawn_blocking(move || -> Result<Bytes, SourceError> {
            let imgs = legends
                .iter()
                .map(|b| decode(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SourceError::new(e.to_string()))?;
            encode_png(&concat_legends(&imgs))
        })
        .await
        .map_err(|e| SourceError::new(e.to_string()))?
    }

    /// The size of the legend without a scale (capabilities' `LegendURL`), asked once.
    pub async fn size(&self) -> Result<(u32, u32), SourceError> {
        self.size
            .get_or_try_init(|| async {
                let png = self.get_legend(None).await?;
                let img = decode(&png).map_err(|e| SourceError::new(e.to_string()))?;
                Ok(img.dimensions())
            })
            .await
            .copied()
    }
}

fn encode_png(img: &RgbaImage) -> Result<Bytes, SourceError> {
    let mut opts = ImageOpts::new(ImageFormat::png());
    opts.transparent = true;
    opts.paletted = false;
    encode(img, &opts).map_err(|e| SourceError::new(e.to_string()))
}

/// MapProxy's `concat_legends`: the images stacked, the last on top, left-aligned, on a
/// transparent background as wide as the widest and as high as all together; none: 1×1.
pub fn concat_legends(legends: &[RgbaImage]) -> RgbaImage {
    match legends {
        [] => RgbaImage::from_pixel(1, 1, image::Rgba([255, 255, 255, 0])),
        [one] => one.clone(),
        _ => {
            let w = legends.iter().map(|l| l.width()).max().unwrap_or(1);
            let h = legends.iter().map(|l| l.height()).sum();
            let mut out = RgbaImage::from_pixel(w, h, image::Rgba([255, 255, 255, 0]));
            let mut y = 0;
            for l in legends.iter().rev() {
                image::imageops::overlay(&mut out, l, 0, i64::from(y));
                y += l.height();
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_last_on_top() {
        let a = RgbaImage::from_pixel(10, 5, image::Rgba([255, 0, 0, 255]));
        let b = RgbaImage::from_pixel(4, 3, image::Rgba([0, 255, 0, 255]));
        let out = concat_legends(&[a, b]);
        assert_eq!(out.dimensions(), (10, 8));
        assert_eq!(out.get_pixel(0, 0).0, [0, 255, 0, 255]);
        assert_eq!(out.get_pixel(9, 0).0[3], 0);
        assert_eq!(out.get_pixel(0, 7).0, [255, 0, 0, 255]);
    }

    #[test]
    fn cache_file_as_mapproxy() {
        // md5("http://example/?foo" + "None") and with scale 5.0
        let s = LegendSource::new(
            vec![LegendClient::File {
                url: "http://example/?foo".into(),
                path: PathBuf::from("/nonexistent"),
            }],
            PathBuf::from("/c/legends"),
            false,
        );
        let none = format!("{:x}", Md5::digest(b"http://example/?fooNone"));
        assert_eq!(
            s.cache_file(None),
            PathBuf::from(format!("/c/legends/{none}.png"))
        );
        let five = format!("{:x}", Md5::digest(b"http://example/?foo5.0"));
        assert_eq!(
            s.cache_file(Some(5.0)),
            PathBuf::from(format!("/c/legends/{five}.png"))
        );
    }
}
