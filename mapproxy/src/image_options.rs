//! A cache's image options as MapProxy 7 merges them (config/configuration/cache.py:414-425
//! `image_opts`, config/configuration/image_options.py `ImageOptionsConfiguration`): the
//! cache's `format` may name a custom format of `globals.image.formats` (its options are the
//! base), the cache's `image:` keys replace those (not merged key by key: an
//! `encoding_options` mapping replaces the named format's whole), and PNG formats get 256
//! colours when `globals.image.paletted` is on and no `colors` is given.

use mapproxy_serve_core::error::{ConfigError, Location};

use crate::config::yaml::{Node, Value};
use crate::config::{CacheConf, MapProxyConf};
use crate::image::transform::Resampling;
use crate::image::{ImageFormat, ImageMode};

/// The merged image options of one cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheImage {
    /// The tiles' format (`image/png`, `image/jpeg`, `mixed`, ...).
    pub format: ImageFormat,
    /// `transparent`; `None`: the sources decide.
    pub transparent: Option<bool>,
    /// `colors`; `None`: not set (MapProxy then takes the sources', [`compatible_colors`]:
    /// a WMS source's PNG has 256 with `globals.image.paletted`, a tile source none); 0: no
    /// palette.
    pub colors: Option<u16>,
    /// `mode`.
    pub mode: Option<ImageMode>,
    /// `resampling_method`, else the named format's, else `globals.image.resampling_method`.
    pub resampling: Resampling,
    /// `encoding_options.jpeg_quality`.
    pub jpeg_quality: Option<u8>,
    /// `opacity` (0-1).
    pub opacity: Option<f64>,
}

/// One format's (or the cache's) options as written.
#[derive(Default, Clone)]
struct Written {
    format: Option<String>,
    transparent: Option<bool>,
    colors: Option<u16>,
    mode: Option<ImageMode>,
    resampling: Option<Resampling>,
    /// `Some` when `encoding_options` was given (its `jpeg_quality`, if any).
    encoding: Option<Option<u8>>,
    opacity: Option<f64>,
}

fn err(loc: &Location, msg: impl Into<String>) -> ConfigError {
    loc.error(msg)
}

/// Reads an `image:` mapping (of a cache, or one of `globals.image.formats`) at `path`.
fn read(node: &Node, path: &str) -> Result<Written, ConfigError> {
    let Value::Map(m) = &node.value else {
        return Err(err(&node.loc, format!("{path}: expected a mapping")));
    };
    let mut w = Written::default();
    for (key, n) in m {
        let here = format!("{path}.{key}");
        match (key.as_str(), &n.value) {
            (_, Value::Null) => {}
            ("format", Value::Str(s)) => w.format = Some(s.clone()),
            ("transparent", Value::Bool(b)) => w.transparent = Some(*b),
            ("colors", Value::Int(c)) => {
                w.colors = Some(
                    u16::try_from(*c)
                        .ok()
                        .filter(|c| *c <= 256)
                        .ok_or_else(|| {
                            err(
                                &n.loc,
                                format!("{here}: expected 0 to 256 colors, found {c}"),
                            )
                        })?,
                )
            }
            ("mode", Value::Str(s)) => {
                w.mode = Some(match s.as_str() {
                    "RGB" => ImageMode::Rgb,
                    "RGBA" => ImageMode::Rgba,
                    "P" => ImageMode::P,
                    "L" | "I" => {
                        return Err(err(
                            &n.loc,
                            format!("{here}: mode {s} is not supported yet"),
                        ))
                    }
                    other => {
                        return Err(err(
                            &n.loc,
                            format!("{here}: expected RGB, RGBA or P, found '{other}'"),
                        ))
                    }
                })
            }
            ("resampling_method", Value::Str(s)) => {
                w.resampling = Some(match s.as_str() {
                    "nearest" => Resampling::Nearest,
                    "bilinear" => Resampling::Bilinear,
                    "bicubic" => Resampling::Bicubic,
                    other => {
                        return Err(err(
                            &n.loc,
                            format!(
                                "{here}: expected nearest, bilinear or bicubic, found '{other}'"
                            ),
                        ))
                    }
                })
            }
            ("encoding_options", Value::Map(opts)) => {
                let mut quality = None;
                for (k, v) in opts {
                    let here = format!("{here}.{k}");
                    match (k.as_str(), &v.value) {
                        (_, Value::Null) => {}
                        ("jpeg_quality", Value::Int(q)) if (0..=100).contains(q) => {
                            quality = u8::try_from(*q).ok()
                        }
                        // MapProxy's _check_encoding_options: 'jpeg_quality is not an integer'
                        ("jpeg_quality", _) => {
                            return Err(err(
                                &v.loc,
                                format!("{here}: jpeg_quality is not an integer from 0 to 100"),
                            ))
                        }
                        // the default quantizer; ours is not Pillow's FASTOCTREE (see README)
                        ("quantizer", Value::Str(q)) if q == "fastoctree" => {}
                        ("quantizer", Value::Str(q)) if q == "mediancut" => {
                            return Err(err(
                                &v.loc,
                                format!("{here}: quantizer mediancut is not supported yet"),
                            ))
                        }
                        ("quantizer", _) => {
                            return Err(err(&v.loc, format!("{here}: unknown quantizer")))
                        }
                        ("tiff_compression", Value::Str(c)) if c == "raw" => {}
                        ("tiff_compression", Value::Str(c)) if c == "tiff_lzw" || c == "jpeg" => {
                            return Err(err(
                                &v.loc,
                                format!("{here}: tiff_compression {c} is not supported yet"),
                            ))
                        }
                        ("tiff_compression", _) => {
                            return Err(err(&v.loc, format!("{here}: unknown tiff_compression")))
                        }
                        (other, _) => {
                            return Err(err(
                                &v.loc,
                                format!(
                                    "{path}.encoding_options: unknown encoding_options: '{other}'"
                                ),
                            ))
                        }
                    }
                }
                w.encoding = Some(quality);
            }
            ("opacity", Value::Float(f)) if (0.0..=1.0).contains(f) => w.opacity = Some(*f),
            ("opacity", Value::Int(i)) if (0..=1).contains(i) => w.opacity = Some(*i as f64),
            ("opacity", _) => {
                return Err(err(
                    &n.loc,
                    format!("{here}: expected a number from 0 to 1"),
                ))
            }
            // MapProxy warns that it is no longer needed
            ("merge_method", _) => {}
            (
                "format" | "transparent" | "colors" | "mode" | "resampling_method"
                | "encoding_options",
                v,
            ) => return Err(err(&n.loc, format!("{here}: unexpected {}", v.kind()))),
            (other, _) => {
                return Err(err(
                    &n.loc,
                    format!("{path}: image.{other} is not supported yet"),
                ))
            }
        }
    }
    Ok(w)
}

/// The image options of cache `name`: MapProxy's `CacheConfiguration.image_opts` (before
/// `compatible_image_options` adds what the sources say).
pub fn cache_image(
    conf: &MapProxyConf,
    name: &str,
    cache: &CacheConf,
) -> Result<CacheImage, ConfigError> {
    let g = &conf.globals.image;
    let own = match &cache.image {
        Some(n) => read(n, &format!("caches.{name}.image"))?,
        None => Written::default(),
    };
    // the format looked up in globals.image.formats: the cache's `format` (else its
    // `request_format`) unless `image.format` is given
    let format = if own.format.is_some() {
        None
    } else {
        Some(cache.format.clone())
    };
    let mut base = match format
        .as_deref()
        .and_then(|f| g.formats.get(f).map(|n| (f, n)))
    {
        Some((f, n)) => read(n, &format!("globals.image.formats.{f}"))?,
        None => Written::default(),
    };
    if base.format.is_none() {
        if let Some(f) = format.as_deref().filter(|f| f.starts_with("image/")) {
            base.format = Some(f.to_string());
        }
    }
    // the cache's own keys replace the named format's
    let merged = Written {
        format: own.format.or(base.format),
        transparent: own.transparent.or(base.transparent),
        colors: own.colors.or(base.colors),
        mode: own.mode.or(base.mode),
        resampling: own.resampling.or(base.resampling),
        encoding: own.encoding.or(base.encoding),
        opacity: own.opacity.or(base.opacity),
    };
    let mut format_text = merged.format.unwrap_or_else(|| {
        // image_opts: a format that is not `image/...` (and not a named one) is PNG
        match format.as_deref() {
            Some(f) if f.starts_with("image/") => f.to_string(),
            _ => "image/png".to_string(),
        }
    });
    let mut transparent = merged.transparent;
    // caches store PNG and JPEG tiles with `mixed`
    if format.as_deref() == Some("mixed") {
        format_text = "mixed".into();
        transparent = Some(true);
    }
    let mut colors = merged.colors;
    // "force 256 colors for image.paletted for backwards compat"
    if colors.is_none() && format_text.contains("png") && g.paletted {
        colors = Some(256);
    }
    let resampling = merged
        .resampling
        .unwrap_or(match g.resampling_method.as_str() {
            "nearest" => Resampling::Nearest,
            "bilinear" => Resampling::Bilinear,
            _ => Resampling::Bicubic,
        });
    Ok(CacheImage {
        format: ImageFormat::new(format_text),
        transparent,
        colors,
        mode: merged.mode,
        resampling,
        jpeg_quality: merged.encoding.flatten(),
        opacity: merged.opacity,
    })
}

/// The `colors` of a source's image options as MapProxy 7 makes them for a source asked for
/// `format` (`SourceConfiguration.image_opts`, through `ImageOptionsConfiguration.image_opts`
/// with no `image:` of the source: a source's own `image.colors` is refused elsewhere): the
/// named format's of `globals.image.formats`, else 256 for a PNG format when
/// `globals.image.paletted`; `None` when unset.
pub fn source_colors(conf: &MapProxyConf, format: &str) -> Result<Option<u16>, ConfigError> {
    let named = match conf.globals.image.formats.get(format) {
        Some(n) => read(n, &format!("globals.image.formats.{format}"))?,
        None => Written::default(),
    };
    let png = match &named.format {
        Some(f) => f.contains("png"),
        None => format.starts_with("image/") && format.contains("png"),
    };
    Ok(named
        .colors
        .or((png && conf.globals.image.paletted).then_some(256)))
}

/// The `colors` MapProxy 7's `compatible_image_options` gives a cache whose own `colors` is
/// unset, from its sources' (each `None` when unset): 0 when one of them is 0, else the most
/// (an unset one counting 0).
pub fn compatible_colors(sources: &[Option<u16>]) -> u16 {
    if sources.contains(&Some(0)) {
        return 0;
    }
    sources.iter().map(|c| c.unwrap_or(0)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::compatible_colors;

    /// MapProxy 7's `compatible_image_options`: a 0 wins, else the most, unset counting 0.
    #[test]
    fn colors_as_compatible_image_options() {
        assert_eq!(compatible_colors(&[Some(256), None]), 256);
        assert_eq!(compatible_colors(&[Some(256), Some(0)]), 0);
        assert_eq!(compatible_colors(&[None, None]), 0);
        assert_eq!(compatible_colors(&[Some(16), Some(64)]), 64);
        assert_eq!(compatible_colors(&[]), 0);
    }
}
