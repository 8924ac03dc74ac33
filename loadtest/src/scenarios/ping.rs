//! `ping`: `grpc.health.v1.Health/Check` as fast as the pacing allows. It touches no business state, so it
//! measures the ceiling of the gRPC stack (transport, HTTP/2, tonic, the server's tower layers).

use std::sync::Arc;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::check::Ledger;
use crate::client::outcome_of;
use crate::driver::Call;
use crate::recorder::Outcome;
use crate::scenarios::{Context, ScenarioRun, new_recorder};

/// Name of the measured RPC.
pub const RPC: &str = "Health/Check";

/// Runs `ping`.
pub async fn run(context: &Context) -> anyhow::Result<ScenarioRun> {
    let recorder = new_recorder();
    let clients = context.clients.clone();
    let sink = recorder.clone();
    let driver = context
        .drive(context.plan(), recorder.clone(), move |call: Call| {
            let (mut health, recorder) = (clients.health(), sink.clone());
            async move {
                let result = health.check(HealthCheckRequest { service: String::new() }).await;
                let outcome = match &result {
                    Ok(_) => Outcome::OK,
                    Err(status) => outcome_of(status),
                };
                recorder.record(RPC, call.due, &outcome);
                if result.is_ok_and(|response| response.into_inner().status() != ServingStatus::Serving) {
                    recorder.count("not_serving", 1);
                }
            }
        })
        .await;
    Ok(ScenarioRun::new(recorder, driver, None, Arc::new(Ledger::default())))
}
