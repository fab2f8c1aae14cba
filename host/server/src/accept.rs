//! The gRPC listener: connections reach tonic only once they have spoken.
//!
//! ```text
//!  TcpListener ──accept──► per-connection task, one deadline (server.handshake_timeout_ms):
//!                            [TLS handshake] then the 24-byte HTTP/2 preface
//!                          ──Conn──► channel ──► tonic (h2 then sees the preface again)
//! ```
//!
//! h2 waits for a preface forever, and its keepalive PINGs start only after it, so without
//! this a client that sends half a preface (or nothing, or half a TLS handshake) holds a
//! socket and a task until it leaves. Here it is closed at the deadline; a connection that
//! sends something other than the preface is closed at once.
//!
//! Every connection carries its own response budget (`server.max_connection_response_bytes`)
//! in its [`ConnInfo`], which tonic puts into each request's extensions.

use crate::limits::Budget;
use crate::tls::Tls;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the server knows of a connection, in every request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// Bytes of responses this connection may hold unwritten.
    pub(crate) budget: Budget,
}

/// The transport under a connection.
#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection whose preface has been read; reads replay it first.
#[derive(Debug)]
pub(crate) struct Conn {
    io: Io,
    replayed: usize,
    info: ConnInfo,
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replayed < PREFACE.len() {
            let rest = &PREFACE[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How connections are accepted.
pub(crate) struct Accept {
    /// TLS, when on.
    pub(crate) tls: Option<Arc<Tls>>,
    /// TLS handshake plus preface, at most.
    pub(crate) timeout: Duration,
    /// The response budget each connection gets.
    pub(crate) connection_bytes: usize,
}

/// The connections accepted on `listener` that completed their handshake and preface in
/// time, for tonic's `serve_with_incoming`. Dropping it closes the listener.
pub(crate) struct Incoming {
    connections: ReceiverStream<Conn>,
    accepting: JoinHandle<()>,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = Result<Conn, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.connections)
            .poll_next(cx)
            .map(|next| next.map(Ok))
    }
}

/// Accepts connections on `listener` until the returned stream is dropped (which closes the
/// listener) and runs `open` on each, TCP_NODELAY set, in a task of its own; the stream yields
/// what `open` gives `Some` for. An accept error (out of file descriptors and the like) is the
/// listener's state, not a reason to stop serving: logged, and accepting resumes 50 ms later.
pub(crate) fn accept_each<T, F, Fut>(
    listener: TcpListener,
    open: F,
) -> (ReceiverStream<T>, JoinHandle<()>)
where
    T: Send + 'static,
    F: Fn(TcpStream, std::net::SocketAddr) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<T>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let opening = open(tcp, peer);
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(conn) = opening.await {
                    let _ = tx.send(conn).await;
                }
            });
        }
    });
    (ReceiverStream::new(rx), task)
}

impl Accept {
    /// Starts accepting on `listener`.
    pub(crate) fn start(self, listener: TcpListener) -> Incoming {
        let accept = Arc::new(self);
        let (connections, accepting) = accept_each(listener, move |tcp, peer| {
            let accept = accept.clone();
            async move {
                match tokio::time::timeout(accept.timeout, accept.open(tcp)).await {
                    Ok(Ok(conn)) => Some(conn),
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "connection refused");
                        None
                    }
                    Err(_) => {
                        metrics::counter!("distlog_handshake_timeouts_total").increment(1);
                        tracing::debug!(
                            %peer,
                            "no handshake and HTTP/2 preface within {:?}: closed",
                            accept.timeout
                        );
                        None
                    }
                }
            }
        });
        Incoming {
            connections,
            accepting,
        }
    }

    /// TLS handshake (when on), then the preface.
    async fn open(&self, tcp: TcpStream) -> io::Result<Conn> {
        let mut io = match &self.tls {
            None => Io::Plain(tcp),
            Some(tls) => Io::Tls(Box::new(tls.acceptor().accept(tcp).await?)),
        };
        let mut preface = [0u8; PREFACE.len()];
        match &mut io {
            Io::Plain(s) => s.read_exact(&mut preface).await?,
            Io::Tls(s) => s.read_exact(&mut preface).await?,
        };
        if &preface != PREFACE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an HTTP/2 connection preface (gRPC needs HTTP/2)",
            ));
        }
        Ok(Conn {
            io,
            replayed: 0,
            info: ConnInfo {
                budget: Budget::new(self.connection_bytes),
            },
        })
    }
}
