//! Bounds on the bytes of responses the server holds for its clients.
//!
//! ```text
//!  Fetch / Subscribe read ──► Grant (stream? + connection + server semaphores, in bytes)
//!        │ reserved before the log is read, shrunk to the encoded response after it
//!        ▼
//!  response message ──► Grants queue (response extension) ──► GrantedBody
//!        encoded by tonic            each chunk tonic encodes leaves with the grants of its
//!                                    bytes inside it (`Bytes::from_owner`): they are
//!                                    released when h2 has written the chunk to the socket,
//!                                    or dropped it because the client went away.
//! ```
//!
//! So a client that opens many calls and never reads holds at most
//! `server.max_connection_response_bytes` (per connection) and all clients together at most
//! `server.max_response_bytes_in_flight`, however many responses they leave unread; the
//! bytes are returned as soon as they are written or the stream or connection is gone.
//! What stays outside the count: a response's framing beyond its reservation when the
//! budget has no room for it (see [`response_reservation`]), and h2's own frame headers.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// gRPC's message prefix: a compression flag and a 4-byte length.
const GRPC_PREFIX: usize = 5;

/// Bytes reserved before a read of `max_bytes` record bytes: the records plus their
/// protobuf framing (offsets, timestamps, lengths; about 20 bytes a record, so a quarter
/// for records of 80 bytes and more) and the message prefix. The reservation is shrunk to
/// the encoded response once it is known.
pub(crate) fn response_reservation(max_bytes: usize) -> usize {
    max_bytes
        .saturating_add(max_bytes / 4)
        .saturating_add(4096 + GRPC_PREFIX)
}

/// The bytes a response message occupies once tonic has encoded it.
pub(crate) fn encoded_bytes(message: &impl prost::Message) -> usize {
    message.encoded_len() + GRPC_PREFIX
}

/// A byte budget: a semaphore of `bytes` permits.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Semaphore>, usize);

impl Budget {
    pub(crate) fn new(bytes: usize) -> Self {
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        Self(Arc::new(Semaphore::new(bytes)), bytes)
    }

    /// Bytes not currently granted.
    pub(crate) fn available(&self) -> usize {
        self.0.available_permits()
    }

    /// Bytes currently granted (a waiter's partial acquisition included).
    pub(crate) fn granted(&self) -> usize {
        self.1.saturating_sub(self.available())
    }
}

fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Bytes granted by one or more budgets at once (a stream's, its connection's, the
/// server's): every permit holds the same count. Released when dropped.
#[derive(Debug)]
pub(crate) struct Grant {
    permits: Vec<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Grant {
    /// A grant of nothing.
    pub(crate) fn none() -> Self {
        Self {
            permits: Vec::new(),
            bytes: 0,
        }
    }

    /// `bytes` from each budget, or `None` when one of them has no room now.
    pub(crate) fn try_take(budgets: &[&Budget], bytes: usize) -> Option<Self> {
        let n = permits(bytes);
        let permits = budgets
            .iter()
            .map(|b| b.0.clone().try_acquire_many_owned(n).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            permits,
            bytes: n as usize,
        })
    }

    /// `bytes` from each budget, waiting for room in each in turn (narrowest first, so a
    /// waiter holds no server-wide bytes while it waits for its own connection).
    pub(crate) async fn take(budgets: &[&Budget], bytes: usize) -> Self {
        let n = permits(bytes);
        let mut permits = Vec::with_capacity(budgets.len());
        for b in budgets {
            // The semaphores are never closed.
            if let Ok(p) = b.0.clone().acquire_many_owned(n).await {
                permits.push(p);
            }
        }
        Self {
            permits,
            bytes: n as usize,
        }
    }

    /// One grant of the same bytes from the budgets of both.
    pub(crate) fn join(mut self, other: Self) -> Self {
        debug_assert_eq!(self.bytes, other.bytes);
        self.permits.extend(other.permits);
        self
    }

    /// Bytes granted.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Splits off `n` bytes (at most all) into a grant of their own.
    fn split(&mut self, n: usize) -> Self {
        let n = n.min(self.bytes);
        let permits = self.permits.iter_mut().filter_map(|p| p.split(n)).collect();
        self.bytes -= n;
        Self { permits, bytes: n }
    }

    /// Resizes the grant to `bytes`: the surplus is returned at once; a shortfall is
    /// taken when every budget has room for it now, and otherwise left uncounted (the
    /// response is sent anyway: it is already read).
    pub(crate) fn fit(&mut self, bytes: usize, budgets: &[&Budget]) {
        if bytes <= self.bytes {
            drop(self.split(self.bytes - bytes));
        } else if let Some(more) = Self::try_take(budgets, bytes - self.bytes) {
            for (p, m) in self.permits.iter_mut().zip(more.permits) {
                p.merge(m);
            }
            self.bytes += more.bytes;
        }
    }
}

/// The grants of a response's messages, in message order: the handler (or the stream
/// that yields them) pushes, [`GrantedBody`] takes them as tonic's encoded chunks pass.
/// Travels from the handler to the body as a response extension.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grants(Arc<Mutex<VecDeque<Grant>>>);

impl Grants {
    pub(crate) fn push(&self, grant: Grant) {
        self.0.lock().push_back(grant);
    }

    /// Grants covering the next `n` encoded bytes (fewer when fewer are queued).
    fn take(&self, mut n: usize) -> Vec<Grant> {
        let mut queue = self.0.lock();
        let mut out = Vec::new();
        while n > 0 {
            let Some(front) = queue.front_mut() else {
                break;
            };
            if front.bytes <= n {
                n -= front.bytes;
                out.extend(queue.pop_front());
            } else {
                out.push(front.split(n));
                n = 0;
            }
        }
        out
    }
}

/// A chunk of encoded response and the grants of its bytes: dropped (and the bytes
/// returned to their budgets) when h2 has written the chunk or discarded it.
struct GrantedChunk {
    bytes: Bytes,
    _grants: Vec<Grant>,
}

impl AsRef<[u8]> for GrantedChunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A response body whose data chunks carry the grants of their bytes.
pub(crate) struct GrantedBody<B> {
    inner: B,
    grants: Grants,
}

impl<B> GrantedBody<B> {
    pub(crate) fn new(inner: B, grants: Grants) -> Self {
        Self { inner, grants }
    }
}

impl<B> Body for GrantedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let frame = frame.map_data(|bytes| {
            let grants = this.grants.take(bytes.len());
            if grants.is_empty() {
                bytes
            } else {
                Bytes::from_owner(GrantedChunk {
                    bytes,
                    _grants: grants,
                })
            }
        });
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_the_bytes_they_cover() {
        let server = Budget::new(1000);
        let conn = Budget::new(300);
        let budgets = [&conn, &server];
        let mut a = Grant::try_take(&budgets, 200).expect("room");
        assert!(Grant::try_take(&budgets, 200).is_none(), "connection full");
        assert_eq!(server.available(), 800);
        a.fit(120, &budgets);
        assert_eq!((conn.available(), server.available()), (180, 880));
        let b = Grant::try_take(&budgets, 100).expect("room after the fit");

        let grants = Grants::default();
        grants.push(a);
        grants.push(b);
        // A chunk of 150 bytes takes all of the first grant and 30 of the second.
        let first = grants.take(150);
        assert_eq!(first.iter().map(Grant::bytes).sum::<usize>(), 150);
        drop(first);
        assert_eq!(conn.available(), 230);
        drop(grants.take(1000));
        assert_eq!((conn.available(), server.available()), (300, 1000));
    }
}
