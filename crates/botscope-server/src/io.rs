//! [`ConnectionIo`]: the socket of one connection as hyper sees it, with a write timeout and
//! a note to the connection's [`Activity`] each time its writes are flushed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::connections::Activity;

pin_project! {
    /// A socket whose writes fail with `TimedOut` once one has made no progress for the write
    /// timeout (a client that stopped reading), and whose flushes tell the connection's
    /// [`Activity`] that an ended answer has left hyper's buffer.
    ///
    /// hyper calls `poll_flush` on its socket only once its own write buffer is empty, so a
    /// flush after an answer's body ended means every byte of it is in the kernel.
    pub(crate) struct ConnectionIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
        write_timeout: Option<Duration>,
        // Armed by the first write that cannot proceed, disarmed by any that does.
        stalled: Option<Pin<Box<Sleep>>>,
        armed: bool,
    }
}

impl<T> ConnectionIo<T> {
    /// `write_timeout` `None`: writes may wait for ever.
    pub(crate) fn new(inner: T, activity: Arc<Activity>, write_timeout: Option<Duration>) -> Self {
        Self {
            inner,
            activity,
            write_timeout,
            stalled: None,
            armed: false,
        }
    }
}

/// Passes `poll` through, failing it once the writes it stands for have been stalled for the
/// write timeout.
fn timed<R>(
    poll: Poll<io::Result<R>>,
    write_timeout: Option<Duration>,
    stalled: &mut Option<Pin<Box<Sleep>>>,
    armed: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<R>> {
    let Some(timeout) = write_timeout else {
        return poll;
    };
    if poll.is_ready() {
        *armed = false;
        return poll;
    }
    // `timeout` was checked against the clock when the server was configured.
    let deadline = Instant::now().checked_add(timeout);
    let Some(deadline) = deadline else {
        return Poll::Pending;
    };
    let sleep = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if !*armed {
        sleep.as_mut().reset(deadline);
        *armed = true;
    }
    ready!(sleep.as_mut().poll(cx));
    Poll::Ready(Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "the client stopped reading",
    )))
}

impl<T: AsyncRead> AsyncRead for ConnectionIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for ConnectionIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        timed(poll, *this.write_timeout, this.stalled, this.armed, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        timed(poll, *this.write_timeout, this.stalled, this.armed, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let poll = this.inner.poll_flush(cx);
        if let Poll::Ready(Ok(())) = poll {
            this.activity.flushed();
        }
        timed(poll, *this.write_timeout, this.stalled, this.armed, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
