//! MapProxy's `ImageFormat`: a MIME type or a short name, compared by extension.

use std::borrow::Cow;
use std::fmt;

/// An image format as MapProxy writes it in its YAML: `image/png`, `png`, `image/jpeg`,
/// `mixed`, `png8`, `image/png; mode=8bit`, ... Two formats are equal when their extensions are
/// (MapProxy's `ImageFormat.__eq__`).
///
/// [`png`](Self::png) and [`jpeg`](Self::jpeg) borrow a static string: a tile sniffed as one
/// (every cache hit) costs no allocation.
#[derive(Debug, Clone)]
pub struct ImageFormat(Cow<'static, str>);

impl ImageFormat {
    pub fn new(s: impl Into<String>) -> ImageFormat {
        ImageFormat(Cow::Owned(s.into()))
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `image/` + the format unless it already starts so.
    pub fn mime_type(&self) -> String {
        if self.0.starts_with("image/") {
            self.0.to_string()
        } else {
            format!("image/{}", self.0)
        }
    }

    /// The part after `/`, before `;`, trimmed: `image/png; mode=8bit` → `png`.
    pub fn ext(&self) -> &str {
        // byte scans: every tile request asks (a `str` pattern search costs more here)
        let s: &str = &self.0;
        match s {
            "image/png" => return "png",
            "image/jpeg" => return "jpeg",
            _ => {}
        }
        let e = &s[s.bytes().position(|b| b == b'/').map_or(0, |i| i + 1)..];
        e[..e.bytes().position(|b| b == b';').unwrap_or(e.len())].trim()
    }

    pub fn png() -> ImageFormat {
        ImageFormat(Cow::Borrowed("image/png"))
    }

    pub fn jpeg() -> ImageFormat {
        ImageFormat(Cow::Borrowed("image/jpeg"))
    }
}

impl PartialEq for ImageFormat {
    fn eq(&self, other: &Self) -> bool {
        self.ext() == other.ext()
    }
}

impl Eq for ImageFormat {}

impl std::hash::Hash for ImageFormat {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ext().hash(state)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_mapproxy() {
        let f = ImageFormat::new("image/png; mode=8bit");
        assert_eq!(f.ext(), "png");
        assert_eq!(f.mime_type(), "image/png; mode=8bit");
        assert_eq!(ImageFormat::new("png").mime_type(), "image/png");
        assert_eq!(ImageFormat::new("jpeg"), ImageFormat::jpeg());
        assert_ne!(ImageFormat::png(), ImageFormat::jpeg());
    }
}
