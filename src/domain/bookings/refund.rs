//! Money that must go back: why a payment is refunded, and the record kept of it.

use crate::domain::values::ids::{BookingId, OfficeId, PaymentReference};
use crate::domain::values::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Why a payment must be refunded. Numbers mirror `antrean.v1.RefundReason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundReason {
    /// Paid after the deadline and the slot was gone.
    PaymentExpired = 1,
    /// A second, different payment.
    DuplicatePayment = 2,
    /// Paid for a cancelled booking.
    Cancelled = 3,
    /// Paid for a booking that had been purged (a notification arriving after retention removed the booking).
    BookingPurged = 4,
}

impl RefundReason {
    /// Lowercase name for labels.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RefundReason::PaymentExpired => "payment_expired",
            RefundReason::DuplicatePayment => "duplicate_payment",
            RefundReason::Cancelled => "cancelled",
            RefundReason::BookingPurged => "booking_purged",
        }
    }
}

/// A payment to return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The booking paid for.
    pub booking_id: BookingId,
    /// The office.
    pub office_id: OfficeId,
    /// The payment.
    pub payment_reference: PaymentReference,
    /// Why.
    pub reason: RefundReason,
    /// When recorded.
    pub recorded_at: Timestamp,
}
