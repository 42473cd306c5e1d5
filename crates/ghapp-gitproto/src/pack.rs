//! A pack read as it streams (git's `Documentation/gitformat-pack.adoc`): `PACK`, version 2 or
//! 3, the object count, then each object's header (type and size), an ofs-delta's offset or a
//! ref-delta's base id, and its zlib data; then a 20-byte SHA-1 trailer.
//!
//! [`Scanner`] reads the pack in whatever pieces it arrives, holding only a few header bytes and
//! one inflate state, and tells its visitor each object's size as soon as it is known (a whole
//! object's from its header, a delta's result size from the first bytes of its delta) and a
//! whole blob's contents as they inflate, so a push can be refused for a large file or a secret
//! before the rest of it has been sent on. What it cannot know, a delta's type and contents,
//! is left to `git index-pack`.
//!
//! ```
//! use ghapp_gitproto::pack::{Kind, Scanner, Seen};
//! // An empty pack: header and trailer.
//! let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
//! pack.extend_from_slice(&[0; 20]);
//! let mut s = Scanner::new();
//! s.feed(&pack, &mut |_: Seen<'_>| {}).unwrap();
//! assert!(s.is_complete());
//! ```

use flate2::{Decompress, FlushDecompress, Status};

/// What an object in a pack is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
    /// A delta against an object earlier in the pack.
    OfsDelta,
    /// A delta against an object named by id (in the pack, or, in a thin pack, only upstream).
    RefDelta,
}

impl Kind {
    fn from_bits(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Commit,
            2 => Kind::Tree,
            3 => Kind::Blob,
            4 => Kind::Tag,
            6 => Kind::OfsDelta,
            7 => Kind::RefDelta,
            _ => return None,
        })
    }
    pub fn is_delta(self) -> bool {
        matches!(self, Kind::OfsDelta | Kind::RefDelta)
    }
}

/// One object, as soon as its size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    /// Where its header starts in the pack (what `git show-index` lists).
    pub offset: u64,
    pub kind: Kind,
    /// The object's size: from the header for a whole object, the delta's result size for a
    /// delta.
    pub size: u64,
}

/// What the scanner saw, in pack order.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    Object(Object),
    /// Inflated contents of the current object, when it is a whole blob (in pieces).
    BlobData(&'a [u8]),
    /// The current object's data ended.
    ObjectEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("the pack does not start with PACK")]
    Signature,
    #[error("pack version {0} is not 2 or 3")]
    Version(u32),
    #[error("object at offset {0} has an unknown type")]
    Type(u64),
    #[error("object at offset {0} has a size or base offset out of range")]
    Varint(u64),
    #[error("object at offset {0} has broken zlib data")]
    Zlib(u64),
    #[error("object at offset {0} inflates to more or fewer bytes than its header says")]
    Length(u64),
    #[error("the pack has bytes after its trailer")]
    Trailing,
    #[error("the pack ended before its last object")]
    Truncated,
}

const TRAILER: usize = 20;
/// The largest object header: 10 bytes of type and size, then 10 of offset or 20 of base id.
const MAX_HEADER: usize = 10 + 20;
/// Inflated bytes in one step.
const WINDOW: usize = 32 * 1024;
/// A delta's two sizes take at most 10 bytes each.
const DELTA_HEAD: usize = 20;

#[derive(Debug)]
enum State {
    Header,
    ObjectHeader,
    Data,
    Trailer,
}

#[derive(Debug)]
struct Current {
    offset: u64,
    kind: Kind,
    declared: u64,
    inflated: u64,
    /// A delta's first inflated bytes, until its result size is known.
    delta_head: Vec<u8>,
    announced: bool,
}

/// Reads a pack incrementally. Memory: a few header bytes, one inflate state, one window.
pub struct Scanner {
    state: State,
    /// Bytes consumed so far.
    offset: u64,
    /// Header bytes not yet complete.
    pending: Vec<u8>,
    objects: u32,
    remaining: u32,
    trailer: usize,
    inflate: Decompress,
    window: Box<[u8]>,
    current: Option<Current>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("offset", &self.offset)
            .field("objects", &self.objects)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            state: State::Header,
            offset: 0,
            pending: Vec::with_capacity(MAX_HEADER),
            objects: 0,
            remaining: 0,
            trailer: 0,
            inflate: Decompress::new(true),
            window: vec![0; WINDOW].into_boxed_slice(),
            current: None,
        }
    }

    /// The object count the pack's header declares (0 until it has been read).
    pub fn objects(&self) -> u32 {
        self.objects
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether every object and the whole trailer have been read.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Trailer) && self.trailer == TRAILER
    }

    /// Reads on; `visit` sees each object, blob data and object end as they are read.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        visit: &mut impl FnMut(Seen<'_>),
    ) -> Result<(), PackError> {
        while !input.is_empty() {
            let used = match self.state {
                State::Header => self.header(input)?,
                State::ObjectHeader => self.object_header(input, visit)?,
                State::Data => self.data(input, visit)?,
                State::Trailer => {
                    let take = input.len().min(TRAILER - self.trailer);
                    if take == 0 {
                        return Err(PackError::Trailing);
                    }
                    self.trailer += take;
                    take
                }
            };
            self.offset += used as u64;
            input = &input[used..];
        }
        Ok(())
    }

    /// Fails unless the pack is complete (call at the end of the stream).
    pub fn finish(&self) -> Result<(), PackError> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(PackError::Truncated)
        }
    }

    fn header(&mut self, input: &[u8]) -> Result<usize, PackError> {
        let take = input.len().min(12 - self.pending.len());
        self.pending.extend_from_slice(&input[..take]);
        if self.pending.len() < 12 {
            return Ok(take);
        }
        if &self.pending[..4] != b"PACK" {
            return Err(PackError::Signature);
        }
        let word =
            |i: usize| u32::from_be_bytes(self.pending[i..i + 4].try_into().unwrap_or([0; 4]));
        let version = word(4);
        if version != 2 && version != 3 {
            return Err(PackError::Version(version));
        }
        self.objects = word(8);
        self.remaining = self.objects;
        self.pending.clear();
        self.next_object();
        Ok(take)
    }

    fn next_object(&mut self) {
        self.state = if self.remaining == 0 {
            State::Trailer
        } else {
            State::ObjectHeader
        };
    }

    /// Gathers header bytes until the header parses; the bytes of `input` it used.
    fn object_header(
        &mut self,
        input: &[u8],
        visit: &mut impl FnMut(Seen<'_>),
    ) -> Result<usize, PackError> {
        let start = self.offset - self.pending.len() as u64;
        let before = self.pending.len();
        let take = input.len().min(MAX_HEADER - before);
        self.pending.extend_from_slice(&input[..take]);
        let Some((kind, size, len)) = parse_header(&self.pending, start)? else {
            if self.pending.len() >= MAX_HEADER {
                return Err(PackError::Varint(start));
            }
            return Ok(take);
        };
        self.pending.clear();
        self.inflate.reset(true);
        let current = Current {
            offset: start,
            kind,
            declared: size,
            inflated: 0,
            delta_head: Vec::new(),
            announced: !kind.is_delta(),
        };
        if current.announced {
            visit(Seen::Object(Object {
                offset: start,
                kind,
                size,
            }));
        }
        self.current = Some(current);
        self.state = State::Data;
        Ok(len - before)
    }

    fn data(&mut self, input: &[u8], visit: &mut impl FnMut(Seen<'_>)) -> Result<usize, PackError> {
        let Some(cur) = self.current.as_mut() else {
            return Err(PackError::Truncated);
        };
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(input, &mut self.window, FlushDecompress::None)
            .map_err(|_| PackError::Zlib(cur.offset))?;
        let used = (self.inflate.total_in() - in0) as usize;
        let produced = (self.inflate.total_out() - out0) as usize;
        let out = &self.window[..produced];
        cur.inflated += produced as u64;
        if cur.inflated > cur.declared {
            return Err(PackError::Length(cur.offset));
        }
        if !cur.announced {
            let want = DELTA_HEAD
                .saturating_sub(cur.delta_head.len())
                .min(out.len());
            cur.delta_head.extend_from_slice(&out[..want]);
            if let Some(size) = delta_result_size(&cur.delta_head, cur.inflated == cur.declared)
                .map_err(|()| PackError::Varint(cur.offset))?
            {
                cur.announced = true;
                cur.delta_head = Vec::new();
                visit(Seen::Object(Object {
                    offset: cur.offset,
                    kind: cur.kind,
                    size,
                }));
            }
        } else if cur.kind == Kind::Blob && !out.is_empty() {
            visit(Seen::BlobData(out));
        }
        match status {
            Status::StreamEnd => {
                if cur.inflated != cur.declared || !cur.announced {
                    return Err(PackError::Length(cur.offset));
                }
                visit(Seen::ObjectEnd);
                self.current = None;
                self.remaining -= 1;
                self.next_object();
            }
            Status::Ok | Status::BufError => {
                if used == 0 && produced == 0 {
                    // No progress with input left: the stream is broken.
                    return Err(PackError::Zlib(cur.offset));
                }
            }
        }
        Ok(used)
    }
}

/// Type, size and header length, or `None` when more bytes are needed.
fn parse_header(b: &[u8], at: u64) -> Result<Option<(Kind, u64, usize)>, PackError> {
    let Some(&first) = b.first() else {
        return Ok(None);
    };
    let kind = Kind::from_bits((first >> 4) & 7).ok_or(PackError::Type(at))?;
    let mut size = u64::from(first & 0x0f);
    let mut shift = 4;
    let mut i = 1;
    let mut byte = first;
    while byte & 0x80 != 0 {
        let Some(&next) = b.get(i) else {
            return Ok(None);
        };
        if shift > 57 {
            return Err(PackError::Varint(at));
        }
        size |= u64::from(next & 0x7f) << shift;
        shift += 7;
        byte = next;
        i += 1;
    }
    match kind {
        Kind::OfsDelta => {
            // Offset encoding of gitformat-pack: each continuation adds one before shifting.
            let mut n: u64 = 0;
            loop {
                let Some(&c) = b.get(i) else {
                    return Ok(None);
                };
                i += 1;
                n = (n << 7) | u64::from(c & 0x7f);
                if c & 0x80 == 0 {
                    break;
                }
                n = n
                    .checked_add(1)
                    .filter(|n| *n < 1 << 56)
                    .ok_or(PackError::Varint(at))?;
            }
            if n == 0 || n > at {
                return Err(PackError::Varint(at));
            }
        }
        Kind::RefDelta => {
            if b.len() < i + 20 {
                return Ok(None);
            }
            i += 20;
        }
        _ => {}
    }
    Ok(Some((kind, size, i)))
}

/// A delta's result size from its first bytes (source size, then result size, each a
/// little-endian base-128 number); `Ok(None)` when more bytes are needed and can come.
fn delta_result_size(head: &[u8], ended: bool) -> Result<Option<u64>, ()> {
    let mut i = 0;
    let mut varint = || -> Result<Option<u64>, ()> {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&c) = head.get(i) else {
                return if ended || head.len() >= DELTA_HEAD {
                    Err(())
                } else {
                    Ok(None)
                };
            };
            i += 1;
            if shift > 63 {
                return Err(());
            }
            v |= u64::from(c & 0x7f) << shift;
            shift += 7;
            if c & 0x80 == 0 {
                return Ok(Some(v));
            }
        }
    };
    if varint()?.is_none() {
        return Ok(None);
    }
    varint()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use proptest::prelude::*;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::fast(), true);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Finish)
            .unwrap();
        out
    }

    fn header(kind: u8, mut size: u64) -> Vec<u8> {
        let mut b = vec![(kind << 4) | (size & 0x0f) as u8];
        size >>= 4;
        while size > 0 {
            *b.last_mut().unwrap() |= 0x80;
            b.push((size & 0x7f) as u8);
            size >>= 7;
        }
        b
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        loop {
            let c = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b.push(c);
                return b;
            }
            b.push(c | 0x80);
        }
    }

    /// A pack of a blob, a ref-delta (to a 1000-byte result) and an ofs-delta to the blob.
    fn sample(blob: &[u8]) -> Vec<u8> {
        let mut p = b"PACK\0\0\0\x02\0\0\0\x03".to_vec();
        p.extend(header(3, blob.len() as u64));
        p.extend(zlib(blob));
        let mut delta = varint(5);
        delta.extend(varint(1000));
        delta.extend_from_slice(b"\x05");
        p.extend(header(7, delta.len() as u64));
        p.extend_from_slice(&[0xab; 20]);
        p.extend(zlib(&delta));
        let here = p.len() as u64;
        p.extend(header(6, delta.len() as u64));
        p.extend(varint_ofs(here - 12));
        p.extend(zlib(&delta));
        p.extend_from_slice(&[0; 20]);
        p
    }

    fn varint_ofs(mut n: u64) -> Vec<u8> {
        let mut b = vec![(n & 0x7f) as u8];
        n >>= 7;
        while n > 0 {
            n -= 1;
            b.insert(0, 0x80 | (n & 0x7f) as u8);
            n >>= 7;
        }
        b
    }

    fn scan(pack: &[u8], piece: usize) -> Result<(Vec<Object>, Vec<u8>), PackError> {
        let mut s = Scanner::new();
        let (mut objects, mut data) = (Vec::new(), Vec::new());
        for chunk in pack.chunks(piece.max(1)) {
            s.feed(chunk, &mut |seen| match seen {
                Seen::Object(o) => objects.push(o),
                Seen::BlobData(d) => data.extend_from_slice(d),
                Seen::ObjectEnd => {}
            })?;
        }
        s.finish()?;
        Ok((objects, data))
    }

    #[test]
    fn objects_and_blob_data_in_any_pieces() {
        let blob: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let pack = sample(&blob);
        for piece in [1, 2, 7, 4096, pack.len()] {
            let (objects, data) = scan(&pack, piece).unwrap();
            assert_eq!(
                objects.iter().map(|o| (o.kind, o.size)).collect::<Vec<_>>(),
                [
                    (Kind::Blob, 100_000),
                    (Kind::RefDelta, 1000),
                    (Kind::OfsDelta, 1000)
                ],
                "piece {piece}"
            );
            assert_eq!(objects[0].offset, 12);
            assert_eq!(data, blob);
        }
    }

    #[test]
    fn broken_packs_are_named() {
        let pack = sample(b"hello");
        assert_eq!(
            scan(b"PACX\0\0\0\x02\0\0\0\0", 3),
            Err(PackError::Signature)
        );
        assert_eq!(
            scan(b"PACK\0\0\0\x04\0\0\0\0", 3),
            Err(PackError::Version(4))
        );
        assert_eq!(scan(&pack[..pack.len() - 1], 5), Err(PackError::Truncated));
        let mut long = pack;
        long.push(0);
        assert_eq!(scan(&long, 5), Err(PackError::Trailing));
        // A header that understates the size: caught as the data inflates.
        let mut lie = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        lie.extend(header(3, 2));
        lie.extend(zlib(b"much more than two bytes"));
        lie.extend_from_slice(&[0; 20]);
        assert_eq!(scan(&lie, 4), Err(PackError::Length(12)));
        let mut bad = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bad.push(0x50);
        bad.extend_from_slice(&[0; 40]);
        assert_eq!(scan(&bad, 4), Err(PackError::Type(12)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), piece in 1usize..64) {
            let mut p = b"PACK\0\0\0\x02\0\0\0\x02".to_vec();
            p.extend(bytes);
            let _ = scan(&p, piece);
        }
    }
}
