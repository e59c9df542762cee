//! HTTP connections that finish what they are doing when the server stops:
//! a request in flight is answered, then the connection closes; an idle
//! keep-alive connection closes at once.
//!
//! hyper-util's `GracefulShutdown` does the same, but polls a watch channel
//! every time a connection is polled, which takes a lock and swaps a waker:
//! about 0.9k instructions per single-event request (callgrind), as much
//! as decoding the event's envelope. Here a poll checks the token's flag and
//! registers for its cancellation again only when the task's waker changes.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub struct UntilStopped<C> {
    connection: Pin<Box<C>>,
    stop: CancellationToken,
    stopped: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The waker `stopped` was last polled with: cancelling the token wakes
    /// it, and the poll that follows sees the token cancelled.
    registered: Option<Waker>,
    draining: bool,
}

impl<C: GracefulConnection> UntilStopped<C> {
    pub fn new(connection: C, stop: CancellationToken) -> Self {
        Self {
            connection: Box::pin(connection),
            stopped: Box::pin(stop.clone().cancelled_owned()),
            stop,
            registered: None,
            draining: false,
        }
    }
}

impl<C: GracefulConnection> Future for UntilStopped<C> {
    type Output = Result<(), C::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.draining {
            let stale = this
                .registered
                .as_ref()
                .is_none_or(|waker| !waker.will_wake(cx.waker()));
            if stale || this.stop.is_cancelled() {
                match this.stopped.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.draining = true;
                        this.connection.as_mut().graceful_shutdown();
                    }
                    Poll::Pending => this.registered = Some(cx.waker().clone()),
                }
            }
        }
        this.connection.as_mut().poll(cx)
    }
}
