//! A pushed pack, read in the pieces the first byte chooses, and every whole blob scanned for
//! credentials: never a panic, and the same objects, blob bytes and findings however the
//! pack is cut.
#![no_main]

use ghapp_gitproto::pack::{Scanner, Seen};
use ghapp_gitproto::secrets;
use libfuzzer_sys::fuzz_target;

type Read = (Vec<(u64, u64)>, Vec<u8>, Vec<Option<secrets::Finding>>, bool);

fn read(body: &[u8], step: usize) -> Read {
    let mut s = Scanner::new();
    let (mut objects, mut data, mut found) = (Vec::new(), Vec::new(), Vec::new());
    let mut scan: Option<secrets::Scanner> = None;
    let mut ok = true;
    for piece in body.chunks(step) {
        let r = s.feed(piece, &mut |seen| match seen {
            Seen::Object(o) => {
                objects.push((o.offset, o.size));
                scan = Some(secrets::Scanner::new());
            }
            Seen::BlobData(d) => {
                data.extend_from_slice(d);
                if let Some(sc) = scan.as_mut() {
                    sc.feed(d);
                }
            }
            Seen::ObjectEnd => found.push(scan.take().and_then(secrets::Scanner::finish)),
        });
        if r.is_err() {
            ok = false;
            break;
        }
    }
    (objects, data, found, ok && s.finish().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x04".to_vec();
    pack.extend_from_slice(body);
    let whole = read(&pack, pack.len().max(1));
    let cut = read(&pack, usize::from(step % 61) + 1);
    if whole.3 && cut.3 {
        assert_eq!(whole, cut);
    }
});
