//! Which role may call which RPC: one table covering every method antrean serves, denying anything not listed.
//!
//! Roles describe the kind of service calling, not a person:
//! - `booking`: the app's back-ends (availability, checks, holds, cancel, reschedule, amend, reads, the waiting room),
//!   each reaching only the bookings it made;
//! - `payment`: the payment back-end (ConfirmPayment only, for every booking);
//! - `office`: counter tools at immigration offices (check-in, reads and amendments, only for the caller's own offices);
//! - `admin`: operators (AdminService).
//!
//! A few methods are public ([`PUBLIC_METHODS`]): a waiting room's published draw, which carries no personal data.
//!
//! A test checks that every method in the compiled file descriptor set has an entry, so a new RPC cannot ship open
//! or unreachable by accident.

/// A caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The app's back-ends.
    Booking,
    /// The payment back-end.
    Payment,
    /// Office counter tools, limited to their offices.
    Office,
    /// Operators.
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 4] = [Role::Booking, Role::Payment, Role::Office, Role::Admin];

    /// The role's name in the configuration.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Role::Booking => "booking",
            Role::Payment => "payment",
            Role::Office => "office",
            Role::Admin => "admin",
        }
    }

    /// The role named `name`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.name() == name)
    }

    /// Whether answers to this role carry applicants' full NIK. The booking back-ends show it back to the applicant
    /// who typed it, and office staff compare it with the identity card at the counter; the payment back-end and
    /// operators do not need it, so they get the masked form (`317101**********`) and no birth date (which is digits 7
    /// to 12 of the NIK).
    #[must_use]
    pub fn sees_full_nik(self) -> bool {
        match self {
            Role::Booking | Role::Office => true,
            Role::Payment | Role::Admin => false,
        }
    }

    /// Whether this role reaches bookings whoever made them: the payment back-end confirms payments for every booking
    /// back-end, and operators see everything. A booking caller reaches the bookings it made, an office caller those
    /// at its offices.
    #[must_use]
    pub fn reaches_every_booking(self) -> bool {
        match self {
            Role::Payment | Role::Admin => true,
            Role::Booking | Role::Office => false,
        }
    }

    /// Whether this role is limited to the offices listed for the caller.
    #[must_use]
    pub fn office_scoped(self) -> bool {
        matches!(self, Role::Office)
    }
}

/// Who may call a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Anyone, authenticated or not (health checks from load balancers).
    Public,
    /// Any authenticated caller, whatever its roles (server reflection).
    Authenticated,
    /// Callers with one of these roles.
    Roles(&'static [Role]),
}

const BOOKING: &[Role] = &[Role::Booking];
const PAYMENT: &[Role] = &[Role::Payment];
const OFFICE: &[Role] = &[Role::Office];
const ADMIN: &[Role] = &[Role::Admin];
const BOOKING_OR_OFFICE: &[Role] = &[Role::Booking, Role::Office];
const EVERY_ROLE: &[Role] = &[Role::Booking, Role::Payment, Role::Office, Role::Admin];

/// Every gRPC method of `antrean.v1` and who may call it.
pub const METHODS: &[(&str, &[Role])] = &[
    ("/antrean.v1.BookingService/ListOffices", EVERY_ROLE),
    ("/antrean.v1.BookingService/GetAvailability", BOOKING),
    ("/antrean.v1.BookingService/Hold", BOOKING),
    ("/antrean.v1.BookingService/HoldGroup", BOOKING),
    ("/antrean.v1.BookingService/ConfirmPayment", PAYMENT),
    ("/antrean.v1.BookingService/Cancel", BOOKING),
    ("/antrean.v1.BookingService/Reschedule", BOOKING),
    ("/antrean.v1.BookingService/CheckIn", OFFICE),
    ("/antrean.v1.BookingService/GetBooking", BOOKING_OR_OFFICE),
    ("/antrean.v1.BookingService/ListBookings", OFFICE),
    ("/antrean.v1.BookingService/FindBookings", BOOKING_OR_OFFICE),
    ("/antrean.v1.BookingService/CheckApplicant", BOOKING),
    ("/antrean.v1.BookingService/AmendBooking", BOOKING_OR_OFFICE),
    ("/antrean.v1.AdminService/UpsertOffice", ADMIN),
    ("/antrean.v1.AdminService/SetSchedule", ADMIN),
    ("/antrean.v1.AdminService/CloseDate", ADMIN),
    ("/antrean.v1.AdminService/GetOfficeStats", ADMIN),
    ("/antrean.v1.AdminService/ListRefunds", ADMIN),
    ("/antrean.v1.AdminService/PurgeBookings", ADMIN),
    ("/antrean.v1.WaitingRoomService/Join", BOOKING),
    ("/antrean.v1.WaitingRoomService/Watch", BOOKING),
    ("/antrean.v1.WaitingRoomService/Leave", BOOKING),
];

/// Methods of `antrean.v1` anyone may call, with or without credentials: what they answer is public by design (a
/// line's draw, so applicants and journalists can check it; no NIK, no booking).
pub const PUBLIC_METHODS: &[&str] = &["/antrean.v1.WaitingRoomService/GetDraw"];

/// The rule for a request path (`/package.Service/Method`). Unknown paths are refused to every caller: deny by
/// default.
#[must_use]
pub fn rule(path: &str) -> Rule {
    if path.starts_with("/grpc.health.v1.Health/") || PUBLIC_METHODS.contains(&path) {
        return Rule::Public;
    }
    if path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
    {
        return Rule::Authenticated;
    }
    METHODS.iter().find(|(method, _)| *method == path).map_or(Rule::Roles(&[]), |(_, roles)| Rule::Roles(roles))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_their_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::parse("Booking"), None);
    }

    #[test]
    fn unknown_paths_are_denied_to_everyone() {
        assert_eq!(rule("/antrean.v1.BookingService/DropDatabase"), Rule::Roles(&[]));
        assert_eq!(rule("/antrean.v1.BookingService/Hold/extra"), Rule::Roles(&[]));
        assert_eq!(rule(""), Rule::Roles(&[]));
        assert_eq!(rule("/grpc.health.v1.Health/Check"), Rule::Public);
        assert_eq!(rule("/antrean.v1.WaitingRoomService/GetDraw"), Rule::Public);
    }

    #[test]
    fn payment_may_only_confirm_payments() {
        let allowed: Vec<&str> =
            METHODS.iter().filter(|(_, roles)| roles.contains(&Role::Payment)).map(|(method, _)| *method).collect();
        assert_eq!(allowed, ["/antrean.v1.BookingService/ListOffices", "/antrean.v1.BookingService/ConfirmPayment"]);
    }

    /// Every method compiled into the server has a rule, so none is open or unreachable by omission.
    #[test]
    fn every_served_method_has_a_rule() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    served.push(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
        assert!(served.len() >= 16, "{served:?}");
        for path in &served {
            let listed = METHODS.iter().any(|(method, _)| method == path) || PUBLIC_METHODS.contains(&path.as_str());
            assert!(listed, "{path} has no rule in auth::permissions");
        }
    }
}
