//! Who may call antrean, and for what: caller authentication (bearer tokens or client certificates), the role table
//! for every RPC, office scoping, NIK masking per role, and anti-hoarding limits on holds.
//!
//! The [`layer::Auth`] layer runs in front of every service: it identifies the caller, checks the method against the
//! role table in [`permissions`], and puts an [`Access`] into the request's extensions. Handlers read it to mask NIKs,
//! to keep office callers to their own offices and booking callers to their own bookings, and to make request ids
//! per caller. Refusals become `Status` values in [`status`], with the same
//! conventions as every other refusal in `grpc/status.rs` (auth sits below the gRPC layer and must not import it).
//!
//! Architecture invariant: a token, a token hash or a full NIK is never logged and never a metric label; metric labels
//! are closed sets (reasons, scopes).
//!
//! # Layout
//!
//! - `token.rs`: token hashing and the constant-time lookup.
//! - `permissions.rs`: [`Role`] and the method table.
//! - `callers.rs`: `[[callers]]` configuration and [`Callers`], the registry that authenticates.
//! - `layer.rs`: the tower layer.
//! - `hoarding.rs`: `[anti_hoarding]` and the [`HoldLimiter`].
//! - `status.rs`: auth and anti-hoarding refusals as `tonic::Status`.

pub mod callers;
pub mod hoarding;
pub mod layer;
pub mod permissions;
pub mod status;
pub mod token;

pub use callers::{Caller, CallerConfig, Callers, validate_callers};
pub use hoarding::{AntiHoardingConfig, HoardingRefusal, HoardingScope, HoldLimiter, HoldRequestKeys};
pub use permissions::Role;

use crate::domain::{Booking, OfficeId, Rejection, RequestId};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Why a call was refused before or by its handler; the `reason` label of `antrean_auth_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Neither a bearer token nor a client certificate of a configured caller. UNAUTHENTICATED.
    MissingCredentials,
    /// A bearer token that matches no caller. UNAUTHENTICATED.
    InvalidToken,
    /// A client certificate that names no caller. UNAUTHENTICATED.
    UnknownCertificate,
    /// The caller's roles do not allow the method. PERMISSION_DENIED.
    Role,
    /// An office caller asked for another office's list. PERMISSION_DENIED. (Another office's booking is answered
    /// NOT_FOUND instead, see [`Access::check_booking`].)
    Office,
}

impl AuthRefusal {
    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            AuthRefusal::MissingCredentials => "missing_credentials",
            AuthRefusal::InvalidToken => "invalid_token",
            AuthRefusal::UnknownCertificate => "unknown_certificate",
            AuthRefusal::Role => "role",
            AuthRefusal::Office => "office",
        }
    }

    /// Counts the refusal in `antrean_auth_refusals_total`.
    pub fn count(self) {
        metrics::counter!(crate::metrics::AUTH_REFUSALS_TOTAL, "reason" => self.label()).increment(1);
    }
}

/// The offices a call may touch.
#[derive(Clone, Debug)]
pub enum OfficeScope {
    /// Any office.
    All,
    /// Only these (an office-role caller).
    Only(Arc<BTreeSet<OfficeId>>),
}

/// Whose bookings a call reaches: which it may read, pay, cancel, reschedule or check in. A booking it does not reach
/// is answered as one that does not exist.
#[derive(Clone, Debug)]
pub enum BookingReach {
    /// Every booking: the payment back-end (it confirms payments for every booking back-end), operators, and the open
    /// local demo.
    All,
    /// The bookings the caller made, if `own` (the booking role), and the bookings at `offices` (the office role).
    Limited {
        /// The caller's own bookings.
        own: bool,
        /// Offices whose bookings it reaches, whoever made them.
        offices: Arc<BTreeSet<OfficeId>>,
    },
}

/// What the authenticated caller may see and touch in this call; put into the request's extensions by the layer.
#[derive(Clone, Debug)]
pub struct Access {
    /// The caller's configured name (`"open"` without configured callers); for anti-hoarding keys and logs.
    pub caller: Arc<str>,
    /// Whether `caller` is a configured caller the layer identified (false for public methods and the open demo,
    /// where `caller` names no one): only then are per-caller limits keyed on it.
    pub authenticated: bool,
    /// Whether answers carry full NIKs.
    pub reveal_nik: bool,
    /// Offices within reach.
    pub offices: OfficeScope,
    /// Bookings within reach.
    pub bookings: BookingReach,
    /// Whether the caller may say when a payment was made (`ConfirmPaymentRequest.paid_at`), which can save a late
    /// notification's slot: the payment role only (and the open local demo).
    pub attests_payment_time: bool,
}

impl Access {
    /// Access without configured callers (the local demo): everything.
    #[must_use]
    pub fn open() -> Access {
        Access {
            caller: Arc::from("open"),
            authenticated: false,
            reveal_nik: true,
            offices: OfficeScope::All,
            bookings: BookingReach::All,
            attests_payment_time: true,
        }
    }

    /// Access for nothing: what a handler assumes when no layer ran (fail closed).
    #[must_use]
    pub fn none() -> Access {
        Access {
            caller: Arc::from("unauthenticated"),
            authenticated: false,
            reveal_nik: false,
            offices: OfficeScope::Only(Arc::default()),
            bookings: BookingReach::Limited { own: false, offices: Arc::default() },
            attests_payment_time: false,
        }
    }

    /// The access of `caller` through the roles in `allowed` that it holds: full NIKs if any of those roles sees
    /// them, every office unless all of those roles are office-scoped, every booking if one of those roles reaches
    /// every booking, else its own (booking role) and its offices' (office role).
    #[must_use]
    pub fn for_roles(caller: &Caller, allowed: &[Role]) -> Access {
        let roles: Vec<Role> = allowed.iter().copied().filter(|role| caller.roles.contains(role)).collect();
        let scoped = !roles.is_empty() && roles.iter().all(|role| role.office_scoped());
        let bookings = if roles.iter().any(|role| role.reaches_every_booking()) {
            BookingReach::All
        } else {
            let offices = if roles.contains(&Role::Office) { caller.offices.clone() } else { BTreeSet::new() };
            BookingReach::Limited { own: roles.contains(&Role::Booking), offices: Arc::new(offices) }
        };
        Access {
            bookings,
            caller: Arc::from(caller.name.as_str()),
            authenticated: true,
            reveal_nik: roles.iter().any(|role| role.sees_full_nik()),
            offices: if scoped { OfficeScope::Only(Arc::new(caller.offices.clone())) } else { OfficeScope::All },
            attests_payment_time: roles.contains(&Role::Payment),
        }
    }

    /// The access the layer attached to a request, or [`Access::none`].
    #[must_use]
    pub fn of(extensions: &http::Extensions) -> Access {
        extensions.get::<Access>().cloned().unwrap_or_else(Access::none)
    }

    /// Whether the call may touch `office_id`.
    #[must_use]
    pub fn may_touch(&self, office_id: &OfficeId) -> bool {
        match &self.offices {
            OfficeScope::All => true,
            OfficeScope::Only(offices) => offices.contains(office_id),
        }
    }

    /// Whether the call reaches `booking`, made by `owner` (`None`: made before bookings had owners, so it is no
    /// booking caller's).
    #[must_use]
    pub fn reaches(&self, booking: &Booking, owner: Option<&str>) -> bool {
        match &self.bookings {
            BookingReach::All => true,
            BookingReach::Limited { own, offices } => {
                (*own && owner == Some(&*self.caller)) || offices.contains(&booking.slot.office_id)
            }
        }
    }

    /// `Ok` if the call may see and act on `booking`, made by `owner`; otherwise NOT_FOUND, exactly the answer for an
    /// id that does not exist, so a caller cannot learn that a booking it may not see exists. Counted as an auth
    /// refusal with reason `booking_not_visible`.
    pub fn check_booking(&self, booking: &Booking, owner: Option<&str>) -> Result<(), Rejection> {
        if self.reaches(booking, owner) {
            Ok(())
        } else {
            metrics::counter!(crate::metrics::AUTH_REFUSALS_TOTAL, "reason" => "booking_not_visible").increment(1);
            Err(Rejection::BookingNotFound(booking.booking_id))
        }
    }

    /// The engine's request id for the client's `request_id`: per caller, so one caller's id never finds another
    /// caller's remembered answer (nor tells it that the id was used), and a hold's bookings belong to this caller.
    #[must_use]
    pub fn request_id(&self, request_id: &RequestId) -> RequestId {
        RequestId::of_caller(&self.caller, request_id)
    }

    /// `Ok` if the caller may say when a payment was made (`ConfirmPaymentRequest.paid_at`); otherwise counts the
    /// refusal and returns it.
    pub fn check_attests_payment_time(&self) -> Result<(), AuthRefusal> {
        if self.attests_payment_time {
            Ok(())
        } else {
            AuthRefusal::Role.count();
            Err(AuthRefusal::Role)
        }
    }

    /// `Ok` if the call may touch `office_id`; otherwise counts the refusal and returns it.
    pub fn check_office(&self, office_id: &OfficeId) -> Result<(), AuthRefusal> {
        if self.may_touch(office_id) {
            Ok(())
        } else {
            AuthRefusal::Office.count();
            Err(AuthRefusal::Office)
        }
    }
}
