//! The engine's side of the verifiable draw: drawing each line's secret from the operating system's random source and
//! logging it (`DrawCommitted`) before the line's draw, so its commitment can be published while the secret stays in
//! the log and snapshots only. The domain draws no randomness; this is where the secret comes from.
//!
//! Architecture invariant: the secret is never logged (tracing), exported (metrics) or returned here; only its
//! commitment is.

use super::Engine;
use crate::domain::DrawSecret;
use rand::TryRngCore;

impl Engine {
    /// Commits every line not drawn yet that has no secret: draws 32 bytes from the operating system for each, logs
    /// them, and returns once they are durable. Called after a schedule is set, before a join is answered when its line
    /// has no secret yet, and on every tick (lines recovered from an earlier build's log). Returns how many lines it
    /// committed.
    pub async fn commit_draws(&self) -> usize {
        let keys = self.book.waiting_rooms_to_commit();
        if keys.is_empty() {
            return 0;
        }
        let log = self.events();
        let mut last_position = None;
        let mut committed = 0;
        for key in keys {
            let secret = match &self.draw_secrets {
                Some(source) => source(&key),
                None => match os_secret() {
                    Some(secret) => secret,
                    None => break,
                },
            };
            let Some(position) = self.book.commit_draw(&key, secret, &log) else { continue };
            last_position = Some(position);
            committed += 1;
            let commitment = hex::encode(secret.commitment());
            tracing::info!(office = %key.office_id, release_at = %key.release_at, %commitment,
                "waiting room committed to its draw secret");
        }
        if let Some(position) = last_position {
            self.await_durable(position).await;
        }
        committed
    }
}

/// 32 bytes from the operating system's random source, or `None` (logged) when it fails: the line then gets its secret
/// at a later tick.
fn os_secret() -> Option<DrawSecret> {
    let mut bytes = [0u8; 32];
    match rand::rngs::OsRng.try_fill_bytes(&mut bytes) {
        Ok(()) => Some(DrawSecret(bytes)),
        Err(error) => {
            tracing::error!(%error, "cannot read the operating system's random source for a draw secret");
            None
        }
    }
}
