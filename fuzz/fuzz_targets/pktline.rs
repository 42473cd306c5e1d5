//! pkt-line framing: any bytes are read frame by frame without a panic, and every data frame
//! written is read back as written.
#![no_main]

use ghapp_gitproto::pktline::{self, Pkt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while let Ok(Some((pkt, used))) = pktline::read(&data[at..]) {
        assert!(used >= 4 && at + used <= data.len());
        at += used;
        if let Pkt::Data(d) = pkt {
            let mut out = Vec::new();
            pktline::write(&mut out, d);
            assert_eq!(pktline::read(&out), Ok(Some((Pkt::Data(d), out.len()))));
        }
    }
});
