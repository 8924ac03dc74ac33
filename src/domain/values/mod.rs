//! Values and their validation: ids, NIKs, dates and instants in office time zones, the characters free text may
//! hold and short text kept inline, the one fixed hash, and field violations. Nothing here depends on the rest of the domain.

pub mod hashing;
pub mod ids;
pub mod nik;
pub mod short_text;
pub mod text;
pub mod time;
pub mod violation;
