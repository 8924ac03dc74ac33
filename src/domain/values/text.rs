//! Free text from callers and operators (applicants' names, office names and places, closure reasons): which
//! characters it may not contain.
//!
//! Control characters, Unicode format characters and line separators are refused everywhere free text is accepted.
//! Format characters are invisible but change how text reads: a right-to-left override (U+202E) shows `Budi
//! \u{202e}oyotnaS` as "Budi Santoyo" reversed on an officer's screen, and zero-width spaces and joiners make two
//! different stored names look the same, so a name checked against an identity card at the counter is not the one
//! booked. Names need none of them.

/// Whether `character` has no place in free text: a control character (Unicode category Cc), a format character
/// (Cf: bidirectional embeddings, overrides and isolates, zero-width spaces and joiners, the byte-order mark, the
/// soft hyphen, invisible operators, tag characters, ...), or a line or paragraph separator (Zl, Zp).
#[must_use]
pub fn is_hidden_or_control(character: char) -> bool {
    character.is_control() || is_format(character) || matches!(character, '\u{2028}' | '\u{2029}')
}

/// Whether `text` has no character [`is_hidden_or_control`] refuses.
#[must_use]
pub fn is_plain_text(text: &str) -> bool {
    !text.chars().any(is_hidden_or_control)
}

/// Unicode general category Cf (format), as of Unicode 16.
fn is_format(character: char) -> bool {
    matches!(
        character,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_letters_and_lose_invisible_characters() {
        for plain in
            ["Budi Santoso", "Siti Nurhaliza binti Abdullah", "Ñoño O'Brien-Müller", "渡辺 美香", "Nguyễn Văn A"]
        {
            assert!(is_plain_text(plain), "{plain:?}");
        }
        for hidden in [
            "Budi \u{202e}oyotnaS",
            "Bu\u{200b}di",
            "Bu\u{200d}di",
            "Budi\u{2066}",
            "\u{feff}Budi",
            "Bu\u{ad}di",
            "Budi\nSantoso",
            "Budi\u{2028}Santoso",
            "Budi\u{0}",
            "Budi\u{e0041}",
        ] {
            assert!(!is_plain_text(hidden), "{hidden:?}");
        }
    }
}
