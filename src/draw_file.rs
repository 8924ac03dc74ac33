//! A published draw as a JSON file anyone can keep and check: fetching one from a server (`antrean get-draw`, every
//! page of `WaitingRoomService.GetDraw`), its format, and verifying it (`antrean verify-draw`). The algorithm itself
//! is `domain::waiting_room::draw`; `scripts/verify_draw.py` is a second implementation of the same checks.
//!
//! The format (README, "Checking the draw"): an object with `format` = "antrean-draw", `algorithm_version`,
//! `office_id`, `release_at` (RFC 3339) and `release_at_ms`, `drawn`, `commitment` and `secret` (lowercase hex, 32
//! bytes each; `secret` empty before the draw), `pre_open` (the draw's input in canonical order: objects with
//! `ticket_id`, `receipt` (hex, 16 bytes) and `joined_at_ms`), `order` (ticket ids by place), `later_arrivals`
//! (objects like `pre_open`, in line order) and `figures`.

use crate::domain::waiting_room::draw::{DRAW_ALGORITHM_VERSION, DrawEntry, DrawMismatch, RECEIPT_BYTES, verify};
use crate::domain::{TicketId, Timestamp};
use crate::limits::PAGE_SIZE_MAX;
use crate::proto::{self, waiting_room_service_client::WaitingRoomServiceClient};
use serde::{Deserialize, Serialize};

/// The value of `format` in every draw file.
pub const FORMAT: &str = "antrean-draw";

/// A published draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// The algorithm (1); 0 for a line drawn before draws were verifiable.
    pub algorithm_version: u32,
    /// The office.
    pub office_id: String,
    /// The release instant, RFC 3339.
    pub release_at: String,
    /// The release instant in milliseconds since the Unix epoch.
    pub release_at_ms: i64,
    /// The draw has been made.
    pub drawn: bool,
    /// The commitment published before the draw, hex.
    pub commitment: String,
    /// The secret, hex; empty before the draw.
    pub secret: String,
    /// The draw's input, in canonical order (ascending ticket number).
    pub pre_open: Vec<FileEntry>,
    /// The resulting order: ticket ids by place, from place 1.
    pub order: Vec<String>,
    /// Tickets that joined after the draw, in line order.
    pub later_arrivals: Vec<FileEntry>,
    /// The release's figures.
    pub figures: FileFigures,
}

/// One ticket in a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `TK` and ten digits.
    pub ticket_id: String,
    /// Hex, 16 bytes.
    pub receipt: String,
    /// When it joined, milliseconds since the Unix epoch.
    pub joined_at_ms: i64,
}

/// A release's figures (see `DrawFigures` in the API).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFigures {
    /// Slots behind the line per pool, by pool name (`regular`, `express`).
    pub slots_offered: std::collections::BTreeMap<String, u64>,
    /// Tickets in line at the draw.
    pub tickets_at_draw: u64,
    /// Milliseconds from the release instant until no slot could come to the line any more; absent until then.
    pub sold_out_after_ms: Option<i64>,
    /// Admissions given.
    pub admitted: u64,
    /// Tickets that held a slot.
    pub booked: u64,
    /// Tickets that expired.
    pub expired: u64,
    /// Tickets that left.
    pub left: u64,
    /// Tickets waiting within reach now.
    pub waiting: u64,
    /// Tickets told SOLD_OUT now.
    pub told_sold_out: u64,
}

/// Why a draw file is refused.
#[derive(Debug, thiserror::Error)]
pub enum DrawFileError {
    /// Not a draw file.
    #[error("not a draw file: {0}")]
    Format(String),
    /// A draw that cannot be checked (not made yet, or made before draws were verifiable).
    #[error("cannot be verified: {0}")]
    NotVerifiable(String),
    /// The draw does not check out.
    #[error("the draw does not verify: {0}")]
    Mismatch(#[from] DrawMismatch),
    /// Fetching it failed.
    #[error("cannot fetch the draw: {0}")]
    Fetch(String),
}

/// What a verified draw says, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Tickets in the draw.
    pub tickets: usize,
    /// The ticket at place 1, if any.
    pub first: Option<String>,
}

/// Checks `file`: the secret hashes to the commitment, the list is canonical with the secret's receipts, and the
/// order recomputes.
pub fn verify_file(file: &DrawFile) -> Result<Verified, DrawFileError> {
    if file.format != FORMAT {
        return Err(DrawFileError::Format(format!("format is {:?}, not {FORMAT:?}", file.format)));
    }
    if file.algorithm_version != DRAW_ALGORITHM_VERSION {
        return Err(DrawFileError::NotVerifiable(format!(
            "algorithm version {} (this build checks version {DRAW_ALGORITHM_VERSION})",
            file.algorithm_version
        )));
    }
    if !file.drawn {
        return Err(DrawFileError::NotVerifiable("the draw has not been made yet: the secret is not revealed".into()));
    }
    let commitment: [u8; 32] = hex_array(&file.commitment, "commitment")?;
    let secret: [u8; 32] = hex_array(&file.secret, "secret")?;
    let entries = file
        .pre_open
        .iter()
        .map(|entry| {
            Ok(DrawEntry {
                ticket_number: ticket_number(&entry.ticket_id)?,
                receipt: hex_array::<RECEIPT_BYTES>(&entry.receipt, "receipt")?,
                joined_at_ms: entry.joined_at_ms,
            })
        })
        .collect::<Result<Vec<DrawEntry>, DrawFileError>>()?;
    let order = file.order.iter().map(|ticket_id| ticket_number(ticket_id)).collect::<Result<Vec<u64>, _>>()?;
    verify(&commitment, &secret, &entries, &order)?;
    Ok(Verified { tickets: entries.len(), first: file.order.first().cloned() })
}

/// Reads and verifies the draw file at `text`.
pub fn verify_text(text: &str) -> Result<Verified, DrawFileError> {
    let file: DrawFile = serde_json::from_str(text).map_err(|error| DrawFileError::Format(error.to_string()))?;
    verify_file(&file)
}

fn ticket_number(text: &str) -> Result<u64, DrawFileError> {
    TicketId::parse(text)
        .map(|ticket_id| ticket_id.0)
        .ok_or_else(|| DrawFileError::Format(format!("ticket id {text:?} is not {}", TicketId::RULE)))
}

fn hex_array<const N: usize>(text: &str, field: &str) -> Result<[u8; N], DrawFileError> {
    let bytes = hex::decode(text).map_err(|error| DrawFileError::Format(format!("{field}: {error}")))?;
    bytes.try_into().map_err(|_| DrawFileError::Format(format!("{field} must be {N} bytes in hex")))
}

/// Fetches every page of the draw of `office_id`'s line released at `release_at_ms` from the server at `target`
/// (`http://host:port`) and assembles the file.
pub async fn fetch(target: &str, office_id: &str, release_at_ms: i64) -> Result<DrawFile, DrawFileError> {
    let fetch_error = |error: &dyn std::fmt::Display| DrawFileError::Fetch(error.to_string());
    let mut client = WaitingRoomServiceClient::connect(target.to_owned()).await.map_err(|error| fetch_error(&error))?;
    let page_size = PAGE_SIZE_MAX as u64;
    let mut pages = Vec::new();
    let mut offset = 0;
    loop {
        let request = proto::GetDrawRequest {
            office_id: office_id.to_owned(),
            release_at: Some(prost_types::Timestamp {
                seconds: release_at_ms.div_euclid(1000),
                nanos: (release_at_ms.rem_euclid(1000) * 1_000_000) as i32,
            }),
            offset,
            page_size: page_size as u32,
        };
        let page = client.get_draw(request).await.map_err(|status| fetch_error(&status))?.into_inner();
        // Before the draw there are no lists to page through.
        let total = if page.drawn { page.pre_open_total.max(page.later_total) } else { 0 };
        pages.push(page);
        offset += page_size;
        if offset >= total {
            break;
        }
    }
    Ok(from_pages(&pages))
}

/// The file made of GetDraw's pages, in order.
#[must_use]
pub fn from_pages(pages: &[proto::GetDrawResponse]) -> DrawFile {
    let last = pages.last().cloned().unwrap_or_default();
    let release_at_ms = last.release_at.map_or(0, |at| at.seconds * 1000 + i64::from(at.nanos / 1_000_000));
    let entries = |list: fn(&proto::GetDrawResponse) -> &Vec<proto::DrawEntry>| {
        pages.iter().flat_map(list).map(file_entry).collect::<Vec<FileEntry>>()
    };
    let figures = last.figures.unwrap_or_default();
    DrawFile {
        format: FORMAT.into(),
        algorithm_version: last.algorithm_version,
        office_id: last.office_id.clone(),
        release_at: Timestamp(release_at_ms).to_string(),
        release_at_ms,
        drawn: last.drawn,
        commitment: hex::encode(&last.draw_commitment),
        secret: hex::encode(&last.secret),
        pre_open: entries(|page| &page.pre_open),
        order: pages.iter().flat_map(|page| page.order.iter().cloned()).collect(),
        later_arrivals: entries(|page| &page.later_arrivals),
        figures: FileFigures {
            slots_offered: figures
                .slots_offered
                .iter()
                .map(|each| (pool_name(each.pool).to_owned(), each.slots))
                .collect(),
            tickets_at_draw: figures.tickets_at_draw,
            sold_out_after_ms: figures
                .sold_out_after
                .map(|after| after.seconds * 1000 + i64::from(after.nanos / 1_000_000)),
            admitted: figures.admitted,
            booked: figures.booked,
            expired: figures.expired,
            left: figures.left,
            waiting: figures.waiting,
            told_sold_out: figures.told_sold_out,
        },
    }
}

fn file_entry(entry: &proto::DrawEntry) -> FileEntry {
    FileEntry {
        ticket_id: entry.ticket_id.clone(),
        receipt: hex::encode(&entry.receipt),
        joined_at_ms: entry.joined_at.map_or(0, |at| at.seconds * 1000 + i64::from(at.nanos / 1_000_000)),
    }
}

fn pool_name(pool: i32) -> &'static str {
    match proto::Pool::try_from(pool) {
        Ok(proto::Pool::Regular) => "regular",
        Ok(proto::Pool::Express) => "express",
        Ok(proto::Pool::Priority) => "priority",
        _ => "unspecified",
    }
}
