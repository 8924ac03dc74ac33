//! Telling background work to stop: one [`ShutdownNotifier`] owned by whoever started the work, and a [`Shutdown`]
//! listener in every loop, which selects on [`Shutdown::recv`] beside its own timer. Modelled on mini-redis's
//! `shutdown.rs`, over a `tokio::sync::watch` channel so a listener can be cloned and a late listener still sees a
//! signal sent before it looked.
//!
//! A loop stops between two pieces of work, never in the middle of one: a tick that is logging its changes finishes
//! them before the loop sees the signal.

use tokio::sync::watch;

/// Sends the shutdown signal to every [`Shutdown`] made from it. Dropping it sends the signal too, so background work
/// cannot outlive its owner by mistake.
#[derive(Debug)]
pub struct ShutdownNotifier {
    sender: watch::Sender<bool>,
}

impl ShutdownNotifier {
    /// A notifier that has not signalled yet.
    #[must_use]
    pub fn new() -> ShutdownNotifier {
        ShutdownNotifier { sender: watch::Sender::new(false) }
    }

    /// A listener for this notifier's signal.
    #[must_use]
    pub fn subscribe(&self) -> Shutdown {
        Shutdown { is_shutdown: *self.sender.borrow(), receiver: self.sender.subscribe() }
    }

    /// Tells every listener to stop. Listeners that are waiting wake at once; later calls to [`Shutdown::recv`]
    /// return at once.
    pub fn notify(&self) {
        self.sender.send_replace(true);
    }
}

impl Default for ShutdownNotifier {
    fn default() -> ShutdownNotifier {
        ShutdownNotifier::new()
    }
}

/// Listens for the shutdown signal of one [`ShutdownNotifier`].
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// Set once the signal has been seen, so `recv` returns at once afterwards.
    is_shutdown: bool,
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// Whether the signal has been seen by [`Shutdown::recv`] or was sent before this listener was made.
    #[must_use]
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits until the signal is sent (or the notifier is dropped). Cancel-safe: use it in `tokio::select!`.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // An error means the notifier is gone; nobody can tell this listener to go on, so it stops as well.
        let _signalled_or_gone = self.receiver.wait_for(|stop| *stop).await;
        self.is_shutdown = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_listener_wakes_and_stays_woken() {
        let notifier = ShutdownNotifier::new();
        let mut early = notifier.subscribe();
        let mut copy = early.clone();
        assert!(!early.is_shutdown());

        notifier.notify();
        early.recv().await;
        copy.recv().await;
        let late = notifier.subscribe();

        assert!(early.is_shutdown() && copy.is_shutdown() && late.is_shutdown());
        early.recv().await;
    }

    #[tokio::test]
    async fn dropping_the_notifier_stops_its_listeners() {
        let notifier = ShutdownNotifier::new();
        let mut listener = notifier.subscribe();

        drop(notifier);
        listener.recv().await;

        assert!(listener.is_shutdown());
    }

    #[tokio::test]
    async fn a_listener_waits_until_told() {
        let notifier = ShutdownNotifier::new();
        let mut listener = notifier.subscribe();

        // `biased` polls `recv` first: were it ready, it would win over the ready branch.
        let stopped = tokio::select! {
            biased;
            () = listener.recv() => true,
            () = std::future::ready(()) => false,
        };

        assert!(!stopped && !listener.is_shutdown(), "no signal was sent");
    }
}
