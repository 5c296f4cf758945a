//! The demo's static files, embedded in the binary: OpenLayers (vendored from npm, see
//! `mapproxy/assets/README.md`) and the pages' style sheet. Served under `/demo/static/`.

use std::sync::OnceLock;

/// The vendored OpenLayers version; its files are served under `static/ol-<version>/`.
pub const OL_VERSION: &str = "10.11.0";

const OL_JS: &[u8] = include_bytes!("../../../assets/ol-10.11.0/ol.js");
const OL_CSS: &[u8] = include_bytes!("../../../assets/ol-10.11.0/ol.css");
const OL_LICENSE: &[u8] = include_bytes!("../../../assets/ol-10.11.0/LICENSE.md");
const SITE_CSS: &[u8] = include_bytes!("../../../assets/demo.css");

/// One year, never revalidated: the file's URL names the version it holds.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// URLs without a version (MapProxy's `static/ol.js`, `static/site.css`): a day.
const DAY: &str = "public, max-age=86400";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const MD: &str = "text/markdown; charset=utf-8";

/// An embedded file.
#[derive(Debug, Clone, Copy)]
pub struct StaticFile {
    pub name: &'static str,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    pub bytes: &'static [u8],
}

const FILES: &[StaticFile] = &[
    StaticFile {
        name: "ol-10.11.0/ol.js",
        content_type: JS,
        cache_control: IMMUTABLE,
        bytes: OL_JS,
    },
    StaticFile {
        name: "ol-10.11.0/ol.css",
        content_type: CSS,
        cache_control: IMMUTABLE,
        bytes: OL_CSS,
    },
    StaticFile {
        name: "ol-10.11.0/LICENSE.md",
        content_type: MD,
        cache_control: IMMUTABLE,
        bytes: OL_LICENSE,
    },
    StaticFile {
        name: "ol.js",
        content_type: JS,
        cache_control: DAY,
        bytes: OL_JS,
    },
    StaticFile {
        name: "ol.css",
        content_type: CSS,
        cache_control: DAY,
        bytes: OL_CSS,
    },
    StaticFile {
        name: "ol-LICENSE.md",
        content_type: MD,
        cache_control: DAY,
        bytes: OL_LICENSE,
    },
    StaticFile {
        name: "site.css",
        content_type: CSS,
        cache_control: DAY,
        bytes: SITE_CSS,
    },
];

/// The file at `static/<name>`, if there is one.
pub fn lookup(name: &str) -> Option<&'static StaticFile> {
    FILES.iter().find(|f| f.name == name)
}

/// The names of all embedded files.
pub fn names() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|f| f.name)
}

impl StaticFile {
    /// A strong ETag: 64-bit FNV-1a of the bytes and their length, computed once per file.
    pub fn etag(&self) -> &'static str {
        static TAGS: OnceLock<Vec<String>> = OnceLock::new();
        let tags = TAGS.get_or_init(|| FILES.iter().map(|f| etag_of(f.bytes)).collect());
        FILES
            .iter()
            .position(|f| f.name == self.name)
            .and_then(|i| tags.get(i))
            .map(String::as_str)
            .unwrap_or("\"0\"")
    }
}

fn etag_of(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}-{:x}\"", bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_there() {
        assert!(OL_VERSION.len() > 1 && FILES[0].name.contains(OL_VERSION));
        let js = lookup("ol.js").map(|f| f.bytes.len()).unwrap_or(0);
        assert_eq!(js, 1070771);
        assert!(lookup("ol-10.11.0/ol.css").is_some());
        assert!(lookup("nope.js").is_none());
        let a = lookup("ol.js").map(|f| f.etag());
        let b = lookup("ol-10.11.0/ol.js").map(|f| f.etag());
        assert_eq!(a, b);
        assert_ne!(a, lookup("ol.css").map(|f| f.etag()));
    }
}
