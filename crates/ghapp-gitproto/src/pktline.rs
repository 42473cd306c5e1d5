//! pkt-line framing (git's `Documentation/gitprotocol-common.adoc`): four hex digits of length
//! (including themselves), then the payload; `0000` flush, `0001` delimiter, `0002` response end.

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pkt<'a> {
    Flush,
    Delim,
    ResponseEnd,
    Data(&'a [u8]),
}

/// Why bytes are not a pkt-line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktError {
    #[error("pkt-line length {0:?} is not four hex digits")]
    BadLength([u8; 4]),
    #[error("pkt-line length {0} is below the minimum of 4")]
    TooShort(usize),
}

/// Largest pkt-line (length header included).
pub const MAX_PKT: usize = 65520;

/// Reads one frame from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// frame and the bytes it used.
pub fn read(buf: &[u8]) -> Result<Option<(Pkt<'_>, usize)>, PktError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let head: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    let s = std::str::from_utf8(&head).map_err(|_| PktError::BadLength(head))?;
    let len = usize::from_str_radix(s, 16).map_err(|_| PktError::BadLength(head))?;
    if !head.iter().all(u8::is_ascii_hexdigit) {
        return Err(PktError::BadLength(head));
    }
    match len {
        0 => Ok(Some((Pkt::Flush, 4))),
        1 => Ok(Some((Pkt::Delim, 4))),
        2 => Ok(Some((Pkt::ResponseEnd, 4))),
        3 => Err(PktError::TooShort(3)),
        n if buf.len() < n => Ok(None),
        n => Ok(Some((Pkt::Data(&buf[4..n]), n))),
    }
}

/// Appends one data frame. Panics never: payloads longer than a frame are split by callers
/// ([`write_sideband`]); `payload` must be at most `MAX_PKT - 4` bytes.
pub fn write(out: &mut Vec<u8>, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PKT - 4);
    out.extend_from_slice(format!("{:04x}", payload.len() + 4).as_bytes());
    out.extend_from_slice(payload);
}

pub fn flush(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0000");
}

/// Writes `data` on side-band `band` (1 data, 2 progress, 3 error), split into frames.
pub fn write_sideband(out: &mut Vec<u8>, band: u8, data: &[u8]) {
    // side-band-64k: 65520 per frame, 4 of length and 1 of band.
    for chunk in data.chunks(MAX_PKT - 5) {
        let mut p = Vec::with_capacity(chunk.len() + 1);
        p.push(band);
        p.extend_from_slice(chunk);
        write(out, &p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames() {
        assert_eq!(read(b"000"), Ok(None));
        assert_eq!(read(b"0000rest"), Ok(Some((Pkt::Flush, 4))));
        assert_eq!(read(b"0001"), Ok(Some((Pkt::Delim, 4))));
        assert_eq!(read(b"0009hello"), Ok(Some((Pkt::Data(b"hello"), 9))));
        assert_eq!(read(b"0009hel"), Ok(None));
        assert!(read(b"00zzabc").is_err());
        assert!(read(b"+001abc").is_err());
        assert_eq!(read(b"0003"), Err(PktError::TooShort(3)));
        let mut v = Vec::new();
        write(&mut v, b"unpack ok\n");
        assert_eq!(v, b"000eunpack ok\n");
    }

    proptest! {
        #[test]
        fn read_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&buf);
        }

        #[test]
        fn write_then_read(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut v = Vec::new();
            write(&mut v, &payload);
            prop_assert_eq!(read(&v).unwrap(), Some((Pkt::Data(&payload), payload.len() + 4)));
        }
    }
}
