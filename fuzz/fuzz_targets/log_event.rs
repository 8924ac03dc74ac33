//! Log event payloads: decode, and what decodes re-encodes to something that decodes the same. Corpus:
//! fuzz/corpus/event.
#![no_main]

use antrean::engine::codec::{decode_event, encode_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = decode_event(bytes) {
        let encoded = encode_event(&event);
        let again = decode_event(&encoded).expect("re-encoded events decode");
        assert_eq!(encode_event(&again), encoded);
    }
});
