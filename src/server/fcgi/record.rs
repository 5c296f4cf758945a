//! FastCGI 1.0 records: the 8-byte header, the record types, name-value pairs.
//!
//! Sans-io: [`parse_record`] takes complete records off the front of a read buffer and
//! returns `Ok(None)` while one is incomplete, so the connection driver decides how to read.
//! Every length comes from the peer and is checked before use; nothing here panics on input.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version this module speaks (`FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Length of a record header.
pub const HEADER_LEN: usize = 8;
/// The largest content one record can carry.
pub const MAX_CONTENT: usize = 0xffff;

/// `FCGI_BEGIN_REQUEST`
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_ABORT_REQUEST`
pub const ABORT_REQUEST: u8 = 2;
/// `FCGI_END_REQUEST`
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`
pub const STDERR: u8 = 7;
/// `FCGI_DATA`
pub const DATA: u8 = 8;
/// `FCGI_GET_VALUES`
pub const GET_VALUES: u8 = 9;
/// `FCGI_GET_VALUES_RESULT`
pub const GET_VALUES_RESULT: u8 = 10;
/// `FCGI_UNKNOWN_TYPE`
pub const UNKNOWN_TYPE: u8 = 11;

/// `FCGI_KEEP_CONN` in the BEGIN_REQUEST flags.
pub const KEEP_CONN: u8 = 1;
/// `FCGI_RESPONDER`
pub const ROLE_RESPONDER: u16 = 1;

/// END_REQUEST protocol status: the request was answered.
pub const REQUEST_COMPLETE: u8 = 0;
/// END_REQUEST protocol status: this connection does not multiplex.
#[allow(dead_code)]
pub const CANT_MPX_CONN: u8 = 1;
/// END_REQUEST protocol status: out of some resource.
pub const OVERLOADED: u8 = 2;
/// END_REQUEST protocol status: the role is not served here.
pub const UNKNOWN_ROLE: u8 = 3;

/// One record as read from the wire (padding already dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record type (`BEGIN_REQUEST`, `PARAMS`, ...); unknown values are kept.
    pub kind: u8,
    /// The request it belongs to; 0 for management records.
    pub request_id: u16,
    /// The content, at most [`MAX_CONTENT`] bytes.
    pub content: Bytes,
}

/// A protocol violation: the connection cannot stay in sync and is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Take one complete record off the front of `buf`; `Ok(None)` when more bytes are needed.
pub fn parse_record(buf: &mut BytesMut) -> Result<Option<Record>, ProtocolError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let version = buf[0];
    if version != VERSION_1 {
        return Err(ProtocolError(format!(
            "unsupported FastCGI version {version}"
        )));
    }
    let kind = buf[1];
    let request_id = u16::from_be_bytes([buf[2], buf[3]]);
    let content_len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    let padding = usize::from(buf[6]);
    let total = HEADER_LEN + content_len + padding;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(content_len).freeze();
    buf.advance(padding);
    Ok(Some(Record {
        kind,
        request_id,
        content,
    }))
}

/// The header of a record with `len` bytes of content and no padding.
pub fn header(kind: u8, request_id: u16, len: usize) -> [u8; HEADER_LEN] {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    let id = request_id.to_be_bytes();
    [VERSION_1, kind, id[0], id[1], len[0], len[1], 0, 0]
}

/// A whole record (header and content) in one buffer; `content` must fit one record.
pub fn encode(kind: u8, request_id: u16, content: &[u8]) -> Bytes {
    let content = &content[..content.len().min(MAX_CONTENT)];
    let mut b = BytesMut::with_capacity(HEADER_LEN + content.len());
    b.put_slice(&header(kind, request_id, content.len()));
    b.put_slice(content);
    b.freeze()
}

/// An END_REQUEST record.
pub fn end_request(request_id: u16, app_status: u32, protocol_status: u8) -> Bytes {
    let mut body = [0u8; 8];
    body[..4].copy_from_slice(&app_status.to_be_bytes());
    body[4] = protocol_status;
    encode(END_REQUEST, request_id, &body)
}

/// An UNKNOWN_TYPE record answering a record of type `kind`.
pub fn unknown_type(kind: u8) -> Bytes {
    let mut body = [0u8; 8];
    body[0] = kind;
    encode(UNKNOWN_TYPE, 0, &body)
}

/// The body of a BEGIN_REQUEST record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    /// `ROLE_RESPONDER`, or a role this server refuses.
    pub role: u16,
    /// Keep the connection open after this request.
    pub keep_conn: bool,
}

/// Read a BEGIN_REQUEST body (8 bytes: role, flags, reserved).
pub fn parse_begin(content: &[u8]) -> Result<BeginRequest, ProtocolError> {
    match content {
        [r0, r1, flags, ..] if content.len() >= 8 => Ok(BeginRequest {
            role: u16::from_be_bytes([*r0, *r1]),
            keep_conn: flags & KEEP_CONN != 0,
        }),
        _ => Err(ProtocolError(format!(
            "BEGIN_REQUEST body of {} bytes (8 expected)",
            content.len()
        ))),
    }
}

/// Read one name or value length: 1 byte below 128, else 4 bytes with the top bit set.
fn read_len(buf: &mut &[u8]) -> Result<usize, ProtocolError> {
    let first = *buf
        .first()
        .ok_or_else(|| ProtocolError("name-value pair cut short".into()))?;
    if first & 0x80 == 0 {
        buf.advance(1);
        return Ok(usize::from(first));
    }
    if buf.len() < 4 {
        return Err(ProtocolError("name-value length cut short".into()));
    }
    let n = u32::from_be_bytes([first & 0x7f, buf[1], buf[2], buf[3]]);
    buf.advance(4);
    usize::try_from(n).map_err(|_| ProtocolError("name-value length too large".into()))
}

/// Parse a complete name-value stream (PARAMS after its empty record, or GET_VALUES).
pub fn parse_pairs(mut buf: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ProtocolError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let name_len = read_len(&mut buf)?;
        let value_len = read_len(&mut buf)?;
        let need = name_len
            .checked_add(value_len)
            .ok_or_else(|| ProtocolError("name-value length overflow".into()))?;
        if buf.len() < need {
            return Err(ProtocolError(format!(
                "name-value pair wants {need} bytes, {} left",
                buf.len()
            )));
        }
        let name = Bytes::copy_from_slice(&buf[..name_len]);
        let value = Bytes::copy_from_slice(&buf[name_len..need]);
        buf.advance(need);
        out.push((name, value));
    }
    Ok(out)
}

/// Append one name-value pair in wire form.
pub fn put_pair(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            out.put_u8(len as u8);
        } else {
            let len = u32::try_from(len).unwrap_or(0x7fff_ffff) | 0x8000_0000;
            out.put_u32(len);
        }
    }
    out.put_slice(name);
    out.put_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_incomplete() {
        let rec = encode(STDIN, 7, b"hello");
        let mut buf = BytesMut::new();
        for (i, b) in rec.iter().enumerate() {
            assert_eq!(parse_record(&mut buf).unwrap(), None, "after {i} bytes");
            buf.put_u8(*b);
        }
        let r = parse_record(&mut buf).unwrap().unwrap();
        assert_eq!(
            (r.kind, r.request_id, &r.content[..]),
            (STDIN, 7, &b"hello"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn padding_is_skipped() {
        let mut buf = BytesMut::new();
        buf.put_slice(&[1, STDOUT, 0, 1, 0, 3, 5, 0]);
        buf.put_slice(b"abc\0\0\0\0\0");
        buf.put_slice(&encode(STDOUT, 1, b""));
        let r = parse_record(&mut buf).unwrap().unwrap();
        assert_eq!(&r.content[..], b"abc");
        let r = parse_record(&mut buf).unwrap().unwrap();
        assert!(r.content.is_empty());
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(parse_record(&mut buf).is_err());
    }

    #[test]
    fn pairs_short_and_long() {
        let long = vec![b'x'; 300];
        let mut b = BytesMut::new();
        put_pair(&mut b, b"SCRIPT_NAME", b"/mapproxy");
        put_pair(&mut b, b"HTTP_COOKIE", &long);
        put_pair(&mut b, &long, b"");
        let pairs = parse_pairs(&b).unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(&pairs[0].1[..], b"/mapproxy");
        assert_eq!(pairs[1].1.len(), 300);
        assert_eq!(pairs[2].0.len(), 300);
        assert!(parse_pairs(&b[..b.len() - 1]).is_err());
        assert!(parse_pairs(&[0x80, 0, 0]).is_err());
        assert!(parse_pairs(&[0xff, 0xff, 0xff, 0xff, 0]).is_err());
    }

    #[test]
    fn begin_request_body() {
        assert_eq!(
            parse_begin(&[0, 1, 1, 0, 0, 0, 0, 0]).unwrap(),
            BeginRequest {
                role: ROLE_RESPONDER,
                keep_conn: true
            }
        );
        assert!(parse_begin(&[0, 1]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Garbage never panics, and whatever parses consumed exactly what its header said.
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = BytesMut::from(&data[..]);
            let mut guard = 0;
            while let Ok(Some(rec)) = parse_record(&mut buf) {
                prop_assert!(rec.content.len() <= MAX_CONTENT);
                let _ = parse_pairs(&rec.content);
                let _ = parse_begin(&rec.content);
                guard += 1;
                prop_assert!(guard <= data.len());
            }
            let _ = parse_pairs(&data);
        }

        /// Valid records split at any point parse to the same thing.
        #[test]
        fn split_anywhere(content in proptest::collection::vec(any::<u8>(), 0..300),
                          id in any::<u16>(), cut in 0usize..320) {
            let wire = encode(STDIN, id, &content);
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            if cut < wire.len() {
                prop_assert_eq!(parse_record(&mut buf).unwrap(), None);
                buf.put_slice(&wire[cut..]);
            }
            let rec = parse_record(&mut buf).unwrap().unwrap();
            prop_assert_eq!(rec.request_id, id);
            prop_assert_eq!(&rec.content[..], &content[..]);
        }

        /// Name-value pairs survive a round trip, with lengths on both sides of 127.
        #[test]
        fn pairs_round_trip(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..200), proptest::collection::vec(any::<u8>(), 0..200)), 0..8)) {
            let mut b = BytesMut::new();
            for (n, v) in &pairs { put_pair(&mut b, n, v); }
            let back = parse_pairs(&b).unwrap();
            prop_assert_eq!(back.len(), pairs.len());
            for ((n, v), (bn, bv)) in pairs.iter().zip(back.iter()) {
                prop_assert_eq!(&n[..], &bn[..]);
                prop_assert_eq!(&v[..], &bv[..]);
            }
        }
    }
}
