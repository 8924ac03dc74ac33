//! The log record frame: decode, and re-encode what decodes (pair assertion). Corpus: fuzz/corpus/record.
#![no_main]

use antrean::storage::{Decoded, decode_record, encode_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Decoded::Record { position, payload, frame_bytes } = decode_record(bytes) {
        let mut again = Vec::new();
        encode_record(&mut again, position, payload);
        assert_eq!(&again[..], &bytes[..frame_bytes as usize]);
    }
});
