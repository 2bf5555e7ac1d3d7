//! The TLS 1.3-only check's ClientHello reader: any bytes, never a panic; a reassembled message
//! is bounded and is the same however its handshake record is split into records.
#![no_main]

use imgproxy_gateway::tls::hello::{offers_tls13, reassemble, split_into_records, Hello, MAX_HELLO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, raw)) = data.split_first() else {
        return;
    };
    let first = reassemble(raw);
    if let Hello::Message(message) = &first {
        assert!(message.len() >= 4 && message.len() <= MAX_HELLO);
        let declared = u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
        assert_eq!(message.len(), 4 + declared);
        let _ = offers_tls13(message);
        // One record holding the whole message, re-framed in `cut`-byte records.
        if message.len() <= usize::from(u16::MAX) {
            let mut record = vec![0x16, 0x03, 0x01];
            record.extend((message.len() as u16).to_be_bytes());
            record.extend(message);
            let split = split_into_records(&record, usize::from(cut).max(1));
            assert_eq!(reassemble(&split), first);
        }
    }
    let _ = offers_tls13(raw);
});
