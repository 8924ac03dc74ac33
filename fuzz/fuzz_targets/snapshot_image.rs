//! Snapshot images: decode, then rebuild the book from what decodes (an error, never a panic). Corpus:
//! fuzz/corpus/image.
#![no_main]

use antrean::domain::book::{BookRules, QuotaBook};
use antrean::engine::codec::decode_image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(image) = decode_image(bytes) {
        let _ = QuotaBook::from_image(BookRules::default(), image);
    }
});
