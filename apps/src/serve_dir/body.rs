//! [`StaticBody`], the response body of [`StaticFiles`](super::StaticFiles): nothing, one
//! in-memory buffer (a cached file), or a file streamed in chunks read on tokio's blocking
//! pool.

use std::fs::File;
use std::future::Future as _;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};

/// The response body of [`StaticFiles`](super::StaticFiles): empty, one in-memory buffer,
/// or a file streamed in chunks read on tokio's blocking pool.
pub struct StaticBody {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    File(FileStream),
}

struct FileStream {
    file: Option<File>,
    /// Not yet seeked to the start offset.
    offset: Option<u64>,
    remaining: u64,
    chunk: usize,
    pending: Option<tokio::task::JoinHandle<(File, io::Result<Bytes>)>>,
}

impl std::fmt::Debug for StaticBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::File(_) => "file",
        };
        f.debug_struct("StaticBody").field("kind", &what).finish()
    }
}

impl StaticBody {
    pub(super) fn empty() -> Self {
        StaticBody { kind: Kind::Empty }
    }
    pub(super) fn full(b: Bytes) -> Self {
        StaticBody {
            kind: Kind::Full(Some(b)),
        }
    }
    pub(super) fn file(file: File, offset: u64, len: u64, chunk: usize) -> Self {
        StaticBody {
            kind: Kind::File(FileStream {
                file: Some(file),
                offset: (offset > 0).then_some(offset),
                remaining: len,
                chunk,
                pending: None,
            }),
        }
    }
}

/// Read `want` bytes of `file` (after seeking to `offset`); the file comes back for the next
/// chunk.
fn read_chunk(mut file: File, offset: Option<u64>, want: usize) -> (File, io::Result<Bytes>) {
    let res = (|| {
        if let Some(off) = offset {
            file.seek(SeekFrom::Start(off))?;
        }
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.freeze())
    })();
    (file, res)
}

impl http_body::Body for StaticBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(fs) => {
                loop {
                    if let Some(h) = &mut fs.pending {
                        let (file, res) = match Pin::new(h).poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(v)) => v,
                            Poll::Ready(Err(e)) => {
                                fs.pending = None;
                                fs.remaining = 0;
                                return Poll::Ready(Some(Err(io::Error::other(e))));
                            }
                        };
                        fs.pending = None;
                        return match res {
                            Ok(bytes) => {
                                fs.file = Some(file);
                                fs.remaining -= bytes.len() as u64;
                                Poll::Ready(Some(Ok(Frame::data(bytes))))
                            }
                            Err(e) => {
                                fs.remaining = 0;
                                Poll::Ready(Some(Err(e)))
                            }
                        };
                    }
                    if fs.remaining == 0 {
                        return Poll::Ready(None);
                    }
                    let Some(file) = fs.file.take() else {
                        return Poll::Ready(None);
                    };
                    let want = usize::try_from(fs.remaining)
                        .unwrap_or(usize::MAX)
                        .min(fs.chunk);
                    let offset = fs.offset.take();
                    match tokio::runtime::Handle::try_current() {
                        Ok(rt) => {
                            fs.pending =
                                Some(rt.spawn_blocking(move || read_chunk(file, offset, want)));
                        }
                        Err(_) => {
                            // No runtime: read in place.
                            let (file, res) = read_chunk(file, offset, want);
                            fs.file = Some(file);
                            return match res {
                                Ok(bytes) => {
                                    fs.remaining -= bytes.len() as u64;
                                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                                }
                                Err(e) => {
                                    fs.remaining = 0;
                                    Poll::Ready(Some(Err(e)))
                                }
                            };
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::File(fs) => fs.remaining == 0 && fs.pending.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(fs) => SizeHint::with_exact(fs.remaining),
        }
    }
}
