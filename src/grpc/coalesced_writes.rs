//! One socket write for the answers that are ready together, instead of one per answer.
//!
//! hyper serves every HTTP/2 stream in a task of its own. When a call's task finishes, it wakes the connection's
//! task, which tokio runs next (its "LIFO slot"), so the connection writes that one answer (a `writev`) before the
//! next call's task even runs: about one system call, and one TCP segment, per answer. A profile of a refusal load
//! on one core showed a sixth of the server's time in those writes.
//!
//! [`CoalescedWrites`] sits between hyper and the socket. Writes go into a buffer; the first flush of a buffer yields
//! instead (the connection's task wakes itself, which tokio treats as a yield: it runs again after the tasks already
//! waiting, that is after the other calls that are ready finished and queued their answers), and the next flush
//! writes everything buffered in one system call. Nothing waits for a timer: the delay is one turn of the scheduler's
//! queue, and an idle server turns it at once.
//!
//! Bounded: a buffer of [`WRITE_BUFFER_BYTES_MAX`] or more is written before anything is added to it, and a write that
//! alone is that large goes straight to the socket.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Bytes buffered at most before they are written whatever the flushes say.
pub const WRITE_BUFFER_BYTES_MAX: usize = 64 * 1024;

/// A connection whose writes are buffered until a flush that found the buffer already deferred once.
pub struct CoalescedWrites<IO> {
    inner: IO,
    buffer: Vec<u8>,
    /// How much of `buffer` is already on the socket (a short write leaves the rest).
    written: usize,
    /// Whether the current buffer's flush already yielded once: the next flush writes it.
    flush_deferred: bool,
}

impl<IO> CoalescedWrites<IO> {
    /// Wraps `inner`.
    pub fn new(inner: IO) -> CoalescedWrites<IO> {
        CoalescedWrites { inner, buffer: Vec::new(), written: 0, flush_deferred: false }
    }
}

impl<IO: AsyncWrite + Unpin> CoalescedWrites<IO> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buffer.len() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(context, &self.buffer[self.written..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += written;
        }
        self.buffer.clear();
        self.written = 0;
        self.flush_deferred = false;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `bytes` more: drains a full buffer first. `Ready(false)` when `bytes` should bypass the buffer.
    fn poll_room(&mut self, context: &mut Context<'_>, bytes: usize) -> Poll<io::Result<bool>> {
        if self.buffer.len() >= WRITE_BUFFER_BYTES_MAX {
            ready!(self.poll_drain(context))?;
        }
        Poll::Ready(Ok(!(self.buffer.is_empty() && bytes >= WRITE_BUFFER_BYTES_MAX)))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<IO> {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_room(context, bytes.len()))? {
            return Pin::new(&mut this.inner).poll_write(context, bytes);
        }
        this.buffer.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let bytes: usize = slices.iter().map(|slice| slice.len()).sum();
        if !ready!(this.poll_room(context, bytes))? {
            return Pin::new(&mut this.inner).poll_write_vectored(context, slices);
        }
        for slice in slices {
            this.buffer.extend_from_slice(slice);
        }
        Poll::Ready(Ok(bytes))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.written < this.buffer.len() && !this.flush_deferred {
            // Waking oneself while running is a yield in tokio: the connection runs again after the tasks already
            // queued, whose answers then share this write.
            this.flush_deferred = true;
            context.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(context))?;
        Pin::new(&mut this.inner).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(context))?;
        Pin::new(&mut this.inner).poll_shutdown(context)
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for CoalescedWrites<IO> {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(context, buffer)
    }
}

impl<IO: Connected> Connected for CoalescedWrites<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> IO::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_reach_the_socket_on_the_second_flush_in_order() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut writes = CoalescedWrites::new(client);
        writes.write_all(b"first ").await.expect("write");
        let vectored = writes.write_vectored(&[IoSlice::new(b"second "), IoSlice::new(b"third")]).await;
        assert_eq!(vectored.expect("write"), "second third".len(), "every slice is taken at once");
        let mut none = [0u8; 1];
        let nothing_yet = std::future::poll_fn(|context| {
            Poll::Ready(Pin::new(&mut server).poll_read(context, &mut ReadBuf::new(&mut none)).is_pending())
        })
        .await;
        assert!(nothing_yet, "nothing is written before a flush");
        // `flush` polls until done: the first poll yields, the second writes.
        writes.flush().await.expect("flush");
        let mut got = vec![0u8; "first second third".len()];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(got, b"first second third");
    }

    #[tokio::test]
    async fn a_full_buffer_is_written_without_waiting_for_a_flush() {
        let (client, mut server) = tokio::io::duplex(4 * WRITE_BUFFER_BYTES_MAX);
        let mut writes = CoalescedWrites::new(client);
        let chunk = vec![7u8; WRITE_BUFFER_BYTES_MAX / 2];
        for _ in 0..3 {
            writes.write_all(&chunk).await.expect("write");
        }
        let mut got = vec![0u8; WRITE_BUFFER_BYTES_MAX];
        server.read_exact(&mut got).await.expect("the first two chunks were written when the buffer filled");
        let big = vec![9u8; WRITE_BUFFER_BYTES_MAX];
        writes.flush().await.expect("flush");
        writes.write_all(&big).await.expect("a large write goes straight through");
        let mut rest = vec![0u8; WRITE_BUFFER_BYTES_MAX / 2 + WRITE_BUFFER_BYTES_MAX];
        server.read_exact(&mut rest).await.expect("read");
        assert!(rest[..WRITE_BUFFER_BYTES_MAX / 2].iter().all(|byte| *byte == 7));
        assert!(rest[WRITE_BUFFER_BYTES_MAX / 2..].iter().all(|byte| *byte == 9));
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_buffered() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut writes = CoalescedWrites::new(client);
        writes.write_all(b"last words").await.expect("write");
        writes.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"last words");
    }
}
