//! The server as a client sees it: real sockets, a body that reports when hyper lets it go.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use botscope_server::{CancellationToken, Server};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

static_assertions::assert_impl_all!(Server: Clone, Send, Sync);

/// `total` bytes in 64 KiB frames; notifies `dropped` when hyper drops it.
struct Big {
    left: usize,
    dropped: Arc<Notify>,
}

impl Body for Big {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left as u64)
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        self.dropped.notify_one();
    }
}

const TOTAL: usize = 16 * 1024 * 1024;

/// A server answering every request with [`Big`]; the notifier of its bodies' drops.
async fn spawn(
    server: Server,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    Arc<Notify>,
    tokio::task::JoinHandle<()>,
) {
    let listener = botscope_server::bind("127.0.0.1:0".parse().unwrap(), 128).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dropped = Arc::new(Notify::new());
    let notify = Arc::clone(&dropped);
    let service = tower::service_fn(move |_request: Request<Incoming>| {
        let dropped = Arc::clone(&notify);
        async move {
            Ok::<_, Infallible>(Response::new(Big {
                left: TOTAL,
                dropped,
            }))
        }
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, service, shutdown.clone()));
    (addr, shutdown, dropped, task)
}

/// A client whose small receive window stalls the server's writes as soon as it stops reading.
async fn client(addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(16 * 1024)
        .expect("receive buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("write");
    stream
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let timeout = Duration::from_millis(300);
    let (addr, shutdown, dropped, task) = spawn(Server::new().write_timeout(timeout)).await;
    let mut stream = client(addr).await;
    let mut first = [0; 1024];
    let read = stream.read(&mut first).await.expect("the head arrives");
    assert!(read > 0);
    let stopped = Instant::now();

    // The server gives up on the body (hyper drops it) once its writes stall for the timeout.
    tokio::time::timeout(Duration::from_secs(30), dropped.notified())
        .await
        .expect("the connection was closed");
    let waited = stopped.elapsed();
    assert!(waited >= timeout, "closed after {waited:?}");

    // What the kernel holds arrives, then the end: the body was cut.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    assert!(
        read + rest.len() < TOTAL,
        "{} bytes arrived",
        read + rest.len()
    );
    shutdown.cancel();
    task.await.expect("the loop ends");
}

#[tokio::test]
async fn a_slow_reader_gets_every_byte_within_the_write_timeout() {
    let (addr, shutdown, _dropped, task) =
        spawn(Server::new().write_timeout(Duration::from_secs(5))).await;
    let mut stream = client(addr).await;
    let mut received = Vec::new();
    let mut buf = vec![0; 256 * 1024];
    let mut reads = 0;
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        received.extend_from_slice(&buf[..n]);
        reads += 1;
        // Slow, but never stalled for the write timeout.
        if reads % 16 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let text = String::from_utf8_lossy(&received[..received.len().min(512)]).into_owned();
        if let Some((head, _)) = text.split_once("\r\n\r\n")
            && received.len() >= head.len() + 4 + TOTAL
        {
            assert_eq!(received.len(), head.len() + 4 + TOTAL);
            break;
        }
        assert!(n > 0, "cut after {} bytes", received.len());
    }
    shutdown.cancel();
    drop(stream);
    task.await.expect("the loop ends");
}

#[tokio::test]
async fn cancelling_stops_accepting_and_the_loop_returns() {
    let (addr, shutdown, _dropped, task) = spawn(Server::new()).await;
    assert!(TcpStream::connect(addr).await.is_ok());
    shutdown.cancel();
    task.await.expect("the loop ends");
    assert!(TcpStream::connect(addr).await.is_err());
}
