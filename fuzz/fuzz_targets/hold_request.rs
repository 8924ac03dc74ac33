//! Request validation: protobuf bytes as a group hold, through every field conversion. Corpus: fuzz/corpus/request.
#![no_main]

use antrean::grpc::convert::Violations;
use antrean::proto;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = proto::HoldGroupRequest::decode(bytes) else { return };
    let today = antrean::domain::time::Date::new(2026, 6, 1).expect("date");
    let mut violations = Violations::default();
    violations.request_id(&request.request_id);
    violations.office_id("office_id", &request.office_id);
    violations.service("service", request.service);
    violations.pool("pool", request.pool);
    violations.date("date", request.date.as_ref());
    violations.session_id("session_id", &request.session_id);
    violations.account_id(&request.account_id);
    for applicant in &request.applicants {
        violations.applicant("applicants[]", Some(applicant), today);
    }
    let _ = violations.finish(Some(()));
});
