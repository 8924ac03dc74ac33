//! Late payments: some applicants who let their hold lapse pay anyway, shortly after the deadline, as the state
//! revenue system may report a payment late. The server must revive the booking when its slot is still free or
//! record a refund, and never oversell. This task sends those payments after the load's journeys handed them over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tonic::Code;

use crate::scenarios::steps::Steps;

/// Late payments waiting to be sent at most; more are skipped and counted.
pub const QUEUE_MAX: usize = 100_000;
/// Late payments in flight at most.
const IN_FLIGHT_MAX: usize = 256;
/// How long after the deadline a late payment arrives.
pub const LATENESS: Duration = Duration::from_millis(500);

/// One payment to send late.
#[derive(Debug)]
pub struct LatePayment {
    /// The user who held.
    pub user: u64,
    /// The lapsed booking.
    pub booking_id: String,
    /// When to pay.
    pub due: Instant,
}

impl LatePayment {
    /// A payment for `booking_id` arriving [`LATENESS`] after `deadline`.
    pub fn after(user: u64, booking_id: String, deadline: SystemTime) -> LatePayment {
        let until_deadline = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        LatePayment { user, booking_id, due: Instant::now() + until_deadline + LATENESS }
    }
}

/// The running late-payment sender.
pub struct LatePayer {
    sender: Mutex<Option<mpsc::Sender<LatePayment>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    stop_at: Instant,
}

impl LatePayer {
    /// Starts the sender; it stops taking work at `stop_at`.
    pub fn start(steps: Arc<Steps>, stop_at: Instant) -> LatePayer {
        let (sender, mut receiver) = mpsc::channel::<LatePayment>(QUEUE_MAX);
        let task = tokio::spawn(async move {
            let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
            while let Ok(Some(payment)) = tokio::time::timeout_at(stop_at.into(), receiver.recv()).await {
                if payment.due >= stop_at {
                    steps.recorder.count("late_payments_skipped", 1);
                    continue;
                }
                tokio::time::sleep_until(payment.due.into()).await;
                let permit = in_flight.clone().acquire_owned().await.expect("semaphore open");
                let steps = steps.clone();
                tokio::spawn(async move {
                    pay(&steps, &payment).await;
                    drop(permit);
                });
            }
            let all = u32::try_from(IN_FLIGHT_MAX).expect("fits");
            let _ = tokio::time::timeout(Duration::from_secs(15), in_flight.acquire_many(all)).await;
        });
        LatePayer { sender: Mutex::new(Some(sender)), task: Mutex::new(Some(task)), stop_at }
    }

    /// Hands a payment over; counted as skipped when the queue is full.
    pub fn send(&self, steps: &Steps, payment: LatePayment) {
        let sent = match self.sender.lock().expect("late payer poisoned").as_ref() {
            Some(sender) => sender.try_send(payment).is_ok(),
            None => false,
        };
        if !sent {
            steps.recorder.count("late_payments_skipped", 1);
        }
    }

    /// Waits until every handed-over payment was sent (or the stop instant passed).
    pub async fn finish(&self) {
        drop(self.sender.lock().expect("late payer poisoned").take());
        let task = self.task.lock().expect("late payer poisoned").take();
        if let Some(task) = task {
            let _ = tokio::time::timeout_at((self.stop_at + Duration::from_secs(20)).into(), task).await;
        }
    }
}

async fn pay(steps: &Steps, payment: &LatePayment) {
    let counter = match steps.confirm("ConfirmPayment(late)", "l", payment.user, &payment.booking_id).await {
        Ok(response) if response.revived => "late_payments_revived",
        Ok(_) => "late_payments_accepted_unexpired",
        Err(status) if status.code() == Code::FailedPrecondition => "late_payments_refused",
        Err(_) => "late_payments_failed",
    };
    steps.recorder.count(counter, 1);
}
