//! Text kept inside its owner when it is short: an applicant's name and an account id live in every booking, and most
//! are shorter than the 24 bytes a `String` takes before its text is even allocated.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// Bytes of text kept inline; longer text is allocated. 22, so that the whole value is 24 bytes: as big as a `String`
/// alone, without the `String`'s allocation (32 bytes or more of heap) for names and ids up to this length.
pub const SHORT_TEXT_INLINE_BYTES_MAX: usize = 22;

/// Immutable text, inline up to [`SHORT_TEXT_INLINE_BYTES_MAX`] bytes, else one exact allocation. Compared, ordered,
/// hashed, shown and encoded as the text itself (an encoding is the same as a `String`'s).
#[derive(Clone)]
pub enum ShortText {
    /// Up to [`SHORT_TEXT_INLINE_BYTES_MAX`] bytes, the first `len` of `bytes`.
    Inline {
        /// Bytes used.
        len: u8,
        /// The text, then zeros.
        bytes: [u8; SHORT_TEXT_INLINE_BYTES_MAX],
    },
    /// Longer text.
    Allocated(Box<str>),
}

impl ShortText {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            ShortText::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).expect("inline text was copied from a str whole")
            }
            ShortText::Allocated(text) => text,
        }
    }
}

impl From<&str> for ShortText {
    fn from(text: &str) -> ShortText {
        if text.len() <= SHORT_TEXT_INLINE_BYTES_MAX {
            let mut bytes = [0; SHORT_TEXT_INLINE_BYTES_MAX];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            ShortText::Inline { len: text.len() as u8, bytes }
        } else {
            ShortText::Allocated(text.into())
        }
    }
}

impl From<String> for ShortText {
    fn from(text: String) -> ShortText {
        if text.len() <= SHORT_TEXT_INLINE_BYTES_MAX {
            ShortText::from(text.as_str())
        } else {
            ShortText::Allocated(text.into())
        }
    }
}

impl From<&String> for ShortText {
    fn from(text: &String) -> ShortText {
        ShortText::from(text.as_str())
    }
}

impl From<ShortText> for String {
    fn from(text: ShortText) -> String {
        text.as_str().to_owned()
    }
}

impl Default for ShortText {
    fn default() -> ShortText {
        ShortText::from("")
    }
}

impl Deref for ShortText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ShortText {}

impl PartialEq<str> for ShortText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for ShortText {
    fn partial_cmp(&self, other: &ShortText) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShortText {
    fn cmp(&self, other: &ShortText) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for ShortText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), formatter)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl Serialize for ShortText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ShortText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ShortText, D::Error> {
        deserialize_text(deserializer, |text| ShortText::from(text))
    }
}

/// Decodes a string into what `make` makes of it, reading the text where the decoder has it (postcard's input) instead
/// of allocating a `String` first: decoding a snapshot or the log makes millions of names and ids.
pub fn deserialize_text<'de, D: serde::Deserializer<'de>, T>(
    deserializer: D,
    make: fn(&str) -> T,
) -> Result<T, D::Error> {
    /// Makes a value of a string, however the decoder has it.
    struct Text<T>(fn(&str) -> T);

    impl<T> serde::de::Visitor<'_> for Text<T> {
        type Value = T;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            Ok((self.0)(text))
        }
    }

    deserializer.deserialize_str(Text(make))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_as_big_as_a_string_and_keeps_up_to_22_bytes_inline() {
        assert_eq!(size_of::<ShortText>(), size_of::<String>());
        for text in
            ["", "Budi", "Siti Nurhaliza Putri a", "Siti Nurhaliza Putri ab", "Dewi Ayu Kusuma Wardhani Lestari"]
        {
            let short = ShortText::from(text);
            assert_eq!(short.as_str(), text);
            assert_eq!(matches!(short, ShortText::Inline { .. }), text.len() <= SHORT_TEXT_INLINE_BYTES_MAX, "{text}");
            assert_eq!(short, ShortText::from(text.to_owned()));
            let encoded = postcard::to_stdvec(&short).expect("encodes");
            assert_eq!(encoded, postcard::to_stdvec(text).expect("encodes"), "encoded as a string is");
            assert_eq!(postcard::from_bytes::<ShortText>(&encoded).expect("decodes"), short);
        }
        assert_eq!(ShortText::from("Ñoño é").as_str(), "Ñoño é", "multi-byte characters");
    }
}
