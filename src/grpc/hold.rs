//! The conversion `Hold`, `HoldGroup` and `CheckApplicant` share: a hold request on the wire becomes a
//! [`Command::Hold`], with every bad field reported at once. `CheckApplicant` goes through this very code, so it
//! refuses exactly what `Hold` refuses, with the same field violations.

use super::convert::Violations;
use crate::domain::{Command, Date, HoldCommand, Rejection, RequestId, SlotRef};
use crate::limits::GROUP_APPLICANTS_MAX;
use crate::proto;
use std::borrow::Cow;

/// The fields `Hold` and `HoldGroup` share.
pub struct HoldParts<'request> {
    /// See `HoldRequest.request_id`.
    pub request_id: &'request str,
    /// See `HoldRequest.office_id`.
    pub office_id: &'request str,
    /// See `HoldRequest.service`.
    pub service: i32,
    /// See `HoldRequest.date`.
    pub date: Option<&'request proto::Date>,
    /// See `HoldRequest.session_id`.
    pub session_id: &'request str,
    /// See `HoldRequest.pool`.
    pub pool: i32,
    /// `HoldRequest.applicant` or `HoldGroupRequest.applicants`.
    pub applicants: Applicants<'request>,
    /// See `HoldRequest.account_id`.
    pub account_id: &'request str,
    /// See `HoldRequest.admission_token`.
    pub admission_token: &'request str,
    /// Made through `HoldGroup` (field paths `applicants[i]`) rather than `Hold` (`applicant`).
    pub group: bool,
}

/// The applicants of a hold request, borrowed from it.
#[derive(Clone, Copy)]
pub enum Applicants<'request> {
    /// `HoldRequest.applicant` (field path `applicant`).
    One(Option<&'request proto::Applicant>),
    /// `HoldGroupRequest.applicants` (field paths `applicants[i]`).
    Group(&'request [proto::Applicant]),
}

impl<'request> Applicants<'request> {
    /// How many are listed.
    #[must_use]
    pub fn len(self) -> usize {
        match self {
            Applicants::One(_) => 1,
            Applicants::Group(applicants) => applicants.len(),
        }
    }

    /// Whether none is listed.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// Each applicant with its field path (spelled out only for a group: a single hold allocates none).
    pub fn with_paths(self) -> impl Iterator<Item = (Cow<'static, str>, Option<&'request proto::Applicant>)> {
        let one = match self {
            Applicants::One(applicant) => Some((Cow::Borrowed("applicant"), applicant)),
            Applicants::Group(_) => None,
        };
        let group = match self {
            Applicants::One(_) => &[][..],
            Applicants::Group(applicants) => applicants,
        };
        let group = group
            .iter()
            .enumerate()
            .map(|(index, applicant)| (Cow::Owned(format!("applicants[{index}]")), Some(applicant)));
        one.into_iter().chain(group)
    }
}

/// The hold command of a request, or every violation.
pub fn hold_command(request: &HoldParts<'_>, today: Date) -> Result<(RequestId, Command), Rejection> {
    let mut violations = Violations::default();
    let request_id = violations.request_id(request.request_id);
    let office_id = violations.office_id("office_id", request.office_id);
    let service = violations.service("service", request.service);
    let date = violations.date("date", request.date);
    let session_id = violations.session_id("session_id", request.session_id);
    let pool = violations.pool("pool", request.pool);
    let account_id = violations.account_id(request.account_id);
    let admission_token = match request.admission_token {
        "" => Some(None),
        text => {
            let parsed = crate::domain::parse_token(text);
            if parsed.is_none() {
                violations.add("admission_token", "must be a token from WaitingRoomService (AT and 16 hex digits)");
            }
            parsed.map(Some)
        }
    };
    if request.applicants.is_empty() || request.applicants.len() > GROUP_APPLICANTS_MAX {
        violations.add("applicants", format!("must list 1 to {GROUP_APPLICANTS_MAX} applicants"));
    }
    let mut applicants = Vec::with_capacity(request.applicants.len());
    for (field, applicant) in request.applicants.with_paths() {
        let Some(applicant) = violations.applicant(&field, applicant, today) else { continue };
        if applicants.iter().any(|seen: &crate::domain::Applicant| seen.nik == applicant.nik) {
            violations.add(format!("{field}.nik"), "the same applicant is listed twice");
        }
        applicants.push(applicant);
    }
    let command = (|| {
        let slot = SlotRef { office_id: office_id?, date: date?, session_id: session_id?, pool: pool? };
        Some(Command::Hold(HoldCommand {
            slot,
            service: service?,
            applicants,
            account_id: account_id?,
            group: request.group,
            admission_token: admission_token?,
        }))
    })();
    violations.finish(request_id.zip(command))
}

/// The parts of a `Hold` request.
#[must_use]
pub fn single(request: &proto::HoldRequest) -> HoldParts<'_> {
    HoldParts {
        request_id: &request.request_id,
        office_id: &request.office_id,
        service: request.service,
        date: request.date.as_ref(),
        session_id: &request.session_id,
        pool: request.pool,
        applicants: Applicants::One(request.applicant.as_ref()),
        account_id: &request.account_id,
        admission_token: &request.admission_token,
        group: false,
    }
}

/// The parts of a `HoldGroup` request.
#[must_use]
pub fn group(request: &proto::HoldGroupRequest) -> HoldParts<'_> {
    HoldParts {
        request_id: &request.request_id,
        office_id: &request.office_id,
        service: request.service,
        date: request.date.as_ref(),
        session_id: &request.session_id,
        pool: request.pool,
        applicants: Applicants::Group(&request.applicants),
        account_id: &request.account_id,
        admission_token: &request.admission_token,
        group: true,
    }
}
