//! Images: formats, encoding and decoding, meta tile splitting (MapProxy's `mapproxy/image/`).

mod codec;
mod format;
pub mod indexed;
mod jpeg;
pub mod mask;
pub mod mode;
mod octree;
pub mod transform;
pub mod watermark;
mod zlib;

pub use codec::{
    blank_image, decode, encode, encode_mode, encode_uniform, has_transparency, overlay, paste,
    png_color_type, png_is_transparent, single_color, sniff_format, stitch, sub_image, GeoRef,
    ImageError, ImageMode, ImageOpts, StitchTile,
};
pub use format::ImageFormat;
pub use image::RgbaImage;
pub use indexed::{encode_indexed, Indexed};

/// Runs `f` (a map's image work: decoding, stitching, transforming, encoding) on the blocking
/// pool, at most one per CPU at once. The work is CPU-bound, so running more at once is no
/// faster and only holds more images in memory: 16 concurrent 1024×1024 WMS maps, each on its
/// own blocking thread, kept 440 MB resident where MapProxy 7 kept 212 MB.
pub(crate) async fn cpu_bound<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, tokio::task::JoinError> {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    // never closed: `acquire` cannot fail
    let _permit = permits.acquire().await.ok();
    tokio::task::spawn_blocking(f).await
}

/// Workers with buffers (JPEG compressors, zlib streams) kept between maps, so that their buffers
/// are not allocated and zeroed for each map: at most one per CPU, whichever threads use them
/// (one per blocking thread kept up to 750 MB of image resizers under 16 concurrent 1024×1024 maps).
pub(crate) struct Kept<T> {
    items: std::sync::Mutex<Vec<T>>,
}

impl<T> Kept<T> {
    pub(crate) const fn new() -> Kept<T> {
        Kept {
            items: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A kept one, if any is free (a poisoned lock only loses the shortcut).
    pub(crate) fn take(&self) -> Option<T> {
        self.items.lock().ok().and_then(|mut v| v.pop())
    }

    /// Keep `item` for the next map, unless one per CPU is kept already: then it is returned.
    pub(crate) fn give_back(&self, item: T) -> Option<T> {
        // available_parallelism reads cgroup files: once
        static KEEP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let keep = *KEEP
            .get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get().max(2)));
        match self.items.lock() {
            Ok(mut v) if v.len() < keep => {
                v.push(item);
                None
            }
            _ => Some(item),
        }
    }
}
