//! One client connection: frames in, in-order answers out.
//!
//! A reader task reads size-prefixed frames. A size below 0 or above
//! `kafka.max_request_bytes` closes the connection before anything is allocated; every
//! frame first takes its size from the listener-wide request memory budget
//! (`kafka.max_request_bytes_in_flight`), so many clients sending large frames wait instead
//! of exhausting memory. The connection task decodes each frame, runs up to
//! `kafka.max_in_flight_per_connection` requests at once (clients pipeline produces and
//! fetches) and writes the answers in request order, as the protocol requires. A produce's
//! appends happen before the next request is read (`api::start`), so a connection's
//! records land in request order; only the wait for their fsync overlaps later requests. A client that
//! stops reading stops being read: its answers wait, so its requests wait.
//!
//! Closed for that client only, with a log line and `distlog_kafka_protocol_errors_total`:
//! an unknown API key, a version no Kafka release defines, a header or body that does not
//! decode, a request before SASL authentication where it is required, idleness past
//! `kafka.idle_timeout_ms`. Everything else is answered (bytes after a body that decoded are
//! ignored, as Kafka ignores them).

use crate::api::{self, Ctx, Fatal, Principal};
use crate::frame::Frame;
use crate::sasl::{Exchange, Step};
use crate::versions;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::Decodable;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// A frame read, with its share of the request memory budget.
struct Incoming {
    body: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// The SASL state of a connection.
#[derive(Debug, Default)]
struct Session {
    principal: Principal,
    exchange: Option<Exchange>,
    /// After a SaslHandshake v0, the client sends its SASL tokens as bare size-prefixed
    /// frames (no Kafka header) until the exchange ends.
    raw_tokens: bool,
}

/// Serves one connection until the client leaves, breaks the protocol or `stop` fires.
pub(crate) async fn run<S>(
    stream: S,
    peer: String,
    ctx: Arc<Ctx>,
    memory: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel(1);
    let limits = ReadLimits {
        max_frame: ctx.config.max_request_bytes,
        budget: ctx.config.max_request_bytes_in_flight.max(1),
        idle: idle(&ctx),
    };
    let reader = tokio::spawn(read_frames(rd, limits, memory, tx));
    let mut session = Session::default();
    session.principal.host = format!(
        "/{}",
        peer.rsplit_once(':')
            .map_or(peer.as_str(), |(ip, _)| ip.trim_matches(['[', ']']))
    );
    let mut inflight = FuturesOrdered::new();
    let limit = ctx.config.max_in_flight_per_connection.max(1);
    let write_timeout = idle(&ctx);
    let outcome: Result<(), String> = loop {
        tokio::select! {
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                match done {
                    Ok(Some(frame)) => {
                        if let Err(e) = write(&mut wr, frame, write_timeout).await {
                            break Err(e);
                        }
                    }
                    Ok(None) => {}
                    Err(Fatal(e)) => break Err(e),
                }
            }
            incoming = rx.recv(), if inflight.len() < limit => {
                let Some(incoming) = incoming else { break Ok(()) };
                let incoming: Incoming = match incoming {
                    Ok(i) => i,
                    Err(e) => break Err(e),
                };
                if session.raw_tokens {
                    let answered = raw_token(&ctx, &mut session, &incoming.body);
                    let written = match answered {
                        Ok(frame) => write(&mut wr, frame, write_timeout).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = written {
                        break Err(e);
                    }
                    continue;
                }
                match decode(&ctx, &session, incoming.body) {
                    Err(Decoded::Close(reason, e)) => {
                        crate::metrics::protocol_error(reason);
                        break Err(e);
                    }
                    Err(Decoded::Answer(frame)) => {
                        // Answers go out in order: after everything before them.
                        inflight.push_back(Box::pin(ready(Ok(Some(frame)))) as Pending);
                    }
                    Ok((header, key, req)) => {
                        if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
                            // SASL changes who the connection is: run it after everything
                            // before it, and before anything after it.
                            let mut failed = None;
                            while let Some(done) = inflight.next().await {
                                let written = match done {
                                    Ok(Some(frame)) => write(&mut wr, frame, write_timeout).await,
                                    Ok(None) => Ok(()),
                                    Err(Fatal(e)) => Err(e),
                                };
                                if let Err(e) = written {
                                    failed = Some(e);
                                    break;
                                }
                            }
                            if let Some(e) = failed {
                                break Err(e);
                            }
                            let answered = sasl(&ctx, &mut session, &header, req);
                            let written = match answered {
                                Ok(frame) => write(&mut wr, frame, write_timeout).await,
                                Err(Fatal(e)) => Err(e),
                            };
                            if let Err(e) = written {
                                break Err(e);
                            }
                            continue;
                        }
                        let permit = incoming._permit;
                        let started = Instant::now();
                        let pending = api::start(&ctx, &session.principal, header, key, req).await;
                        inflight.push_back(Box::pin(async move {
                            let out = pending.await;
                            crate::metrics::request(key, started.elapsed());
                            drop(permit);
                            out
                        }) as Pending);
                    }
                }
            }
            _ = stop.changed() => break Ok(()),
        }
    };
    reader.abort();
    match outcome {
        Ok(()) => {
            // The client is gone or we are stopping: answers still owed are written if
            // the client reads them, within the write timeout.
            while let Some(Ok(Some(frame))) = inflight.next().await {
                if write(&mut wr, frame, write_timeout).await.is_err() {
                    break;
                }
            }
            tracing::debug!(peer, "kafka connection closed");
        }
        Err(reason) => tracing::info!(peer, reason, "kafka connection closed"),
    }
    let _ = wr.shutdown().await;
}

use crate::api::Pending;

async fn ready<T>(v: T) -> T {
    v
}

fn idle(ctx: &Ctx) -> Option<Duration> {
    (ctx.config.idle_timeout_ms > 0).then(|| Duration::from_millis(ctx.config.idle_timeout_ms))
}

/// A frame that is not a request to run.
enum Decoded {
    /// Close the connection: `(metric reason, log message)`.
    Close(&'static str, String),
    /// Answer with this frame without running anything.
    Answer(Frame),
}

fn close(reason: &'static str, detail: impl Into<String>) -> Decoded {
    Decoded::Close(reason, detail.into())
}

/// Decodes one frame's header and body.
fn decode(
    ctx: &Ctx,
    session: &Session,
    mut body: Bytes,
) -> Result<(RequestHeader, ApiKey, RequestKind), Decoded> {
    if body.len() < 8 {
        return Err(close(
            "truncated-header",
            format!("a {}-byte frame has no request header", body.len()),
        ));
    }
    let raw_key = i16::from_be_bytes([body[0], body[1]]);
    let version = i16::from_be_bytes([body[2], body[3]]);
    let key = ApiKey::try_from(raw_key)
        .map_err(|_| close("unknown-api", format!("unknown API key {raw_key}")))?;
    let known = key.valid_versions();
    if key == ApiKey::ApiVersions && !versions::supported(key, version) {
        // KIP-511: answer in v0 with the table, whatever version was asked.
        let correlation_id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        let frame = Frame::encode(
            correlation_id,
            0,
            &api::unsupported_api_versions(),
            Default::default(),
        )
        .map_err(|e| close("encode", e.to_string()))?;
        return Err(Decoded::Answer(frame));
    }
    if version < known.min || version > known.max {
        return Err(close(
            "unknown-version",
            format!("{key:?} v{version} is not a version of the protocol"),
        ));
    }
    let header =
        RequestHeader::decode(&mut body, key.request_header_version(version)).map_err(|e| {
            close(
                "malformed-header",
                format!("{key:?} v{version}: bad header: {e}"),
            )
        })?;
    let open = matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if ctx.config.sasl_required && session.principal.user.is_none() && !open {
        return Err(close(
            "unauthenticated",
            format!("{key:?} before SASL authentication, which this listener requires"),
        ));
    }
    let req = RequestKind::decode(key, &mut body, version).map_err(|e| {
        close(
            "malformed-body",
            format!("{key:?} v{version}: bad body: {e}"),
        )
    })?;
    if body.has_remaining() {
        // Kafka ignores bytes after the fields it knows (librdkafka 2.16's AdminClient sends
        // Metadata v12 with 3 such bytes); so does this listener.
        tracing::debug!(
            api = ?key,
            version,
            bytes = body.remaining(),
            "ignoring bytes after the request body"
        );
    }
    if !versions::supported(key, version) {
        return Err(match crate::api::admin::unsupported(&header, key, &req) {
            Some(frame) => Decoded::Answer(frame),
            None => close(
                "unsupported",
                format!("{key:?} v{version} is not implemented (see docs/KAFKA.md)"),
            ),
        });
    }
    Ok((header, key, req))
}

/// Runs a SASL request against the connection's session.
fn sasl(
    ctx: &Ctx,
    session: &mut Session,
    header: &RequestHeader,
    req: RequestKind,
) -> Result<Frame, Fatal> {
    let v = header.request_api_version;
    let encode = |f: anyhow::Result<Frame>| f.map_err(|e| Fatal(format!("cannot encode: {e}")));
    match req {
        RequestKind::SaslHandshake(SaslHandshakeRequest { mechanism, .. }) => {
            let offered = ctx
                .sasl
                .mechanisms()
                .into_iter()
                .map(crate::api::s)
                .collect();
            let code = if session.principal.user.is_some() {
                ResponseError::IllegalSaslState.code()
            } else {
                match ctx.sasl.start(&mechanism) {
                    Some(x) => {
                        session.exchange = Some(x);
                        session.raw_tokens = v == 0;
                        0
                    }
                    None => ResponseError::UnsupportedSaslMechanism.code(),
                }
            };
            crate::metrics::error(ApiKey::SaslHandshake, code);
            let resp = SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(offered);
            encode(Frame::encode(
                header.correlation_id,
                v,
                &resp,
                Default::default(),
            ))
        }
        RequestKind::SaslAuthenticate(SaslAuthenticateRequest { auth_bytes, .. }) => {
            let resp = match session.exchange.as_mut() {
                None => SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(crate::api::s(
                        "SaslAuthenticate before a successful SaslHandshake",
                    ))),
                Some(x) => match x.step(&ctx.sasl, &auth_bytes) {
                    Ok(Step::Continue(challenge)) => {
                        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(challenge))
                    }
                    Ok(Step::Done {
                        user,
                        admin,
                        response,
                    }) => {
                        session.exchange = None;
                        session.principal = Principal {
                            user: Some(user),
                            admin,
                            host: std::mem::take(&mut session.principal.host),
                        };
                        SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(response))
                    }
                    Err(e) => {
                        session.exchange = None;
                        SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                            .with_error_message(Some(crate::api::s(e.to_string())))
                    }
                },
            };
            crate::metrics::error(ApiKey::SaslAuthenticate, resp.error_code);
            encode(Frame::encode(
                header.correlation_id,
                v,
                &resp,
                Default::default(),
            ))
        }
        _ => Err(Fatal("not a SASL request".into())),
    }
}

/// One bare SASL token after a SaslHandshake v0: the server's token goes back the same way.
/// A failed exchange closes the connection (v0 has no way to say why).
fn raw_token(ctx: &Ctx, session: &mut Session, token: &[u8]) -> Result<Frame, String> {
    let Some(x) = session.exchange.as_mut() else {
        return Err("a SASL token without an exchange".into());
    };
    let reply = match x.step(&ctx.sasl, token) {
        Ok(Step::Continue(challenge)) => challenge,
        Ok(Step::Done {
            user,
            admin,
            response,
        }) => {
            session.exchange = None;
            session.raw_tokens = false;
            session.principal = Principal {
                user: Some(user),
                admin,
                host: std::mem::take(&mut session.principal.host),
            };
            response
        }
        Err(e) => {
            crate::metrics::error(
                ApiKey::SaslAuthenticate,
                ResponseError::SaslAuthenticationFailed.code(),
            );
            return Err(format!("SASL authentication failed: {e}"));
        }
    };
    let mut frame = BytesMut::with_capacity(4 + reply.len());
    frame.extend_from_slice(&u32::try_from(reply.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&reply);
    Ok(Frame {
        chunks: vec![frame.freeze()],
        permit: None,
    })
}

#[derive(Debug, Clone, Copy)]
struct ReadLimits {
    max_frame: usize,
    budget: usize,
    idle: Option<Duration>,
}

/// Reads frames into `tx` until the client closes, breaks a limit or the receiver is gone.
async fn read_frames<R: AsyncRead + Unpin>(
    mut rd: R,
    limits: ReadLimits,
    memory: Arc<Semaphore>,
    tx: mpsc::Sender<Result<Incoming, String>>,
) {
    loop {
        let mut size = [0u8; 4];
        let read = match limits.idle {
            Some(idle) => match tokio::time::timeout(idle, rd.read_exact(&mut size)).await {
                Ok(r) => r,
                Err(_) => {
                    crate::metrics::protocol_error("idle");
                    let _ = tx.send(Err(format!("idle for {idle:?}"))).await;
                    return;
                }
            },
            None => rd.read_exact(&mut size).await,
        };
        if read.is_err() {
            return; // closed (EOF or reset): the connection ends quietly
        }
        let size = i32::from_be_bytes(size);
        let Some(len) = usize::try_from(size)
            .ok()
            .filter(|&l| l <= limits.max_frame)
        else {
            crate::metrics::protocol_error("frame-size");
            let _ = tx
                .send(Err(format!(
                    "frame size {size} is outside 0..={} (kafka.max_request_bytes)",
                    limits.max_frame
                )))
                .await;
            return;
        };
        let permits = u32::try_from(len.clamp(1, limits.budget)).unwrap_or(u32::MAX);
        let Ok(permit) = memory.clone().acquire_many_owned(permits).await else {
            return;
        };
        let mut body = BytesMut::zeroed(len);
        if let Err(e) = rd.read_exact(&mut body).await {
            crate::metrics::protocol_error("truncated-frame");
            let _ = tx
                .send(Err(format!(
                    "connection ended inside a {len}-byte frame: {e}"
                )))
                .await;
            return;
        }
        let incoming = Incoming {
            body: body.freeze(),
            _permit: permit,
        };
        if tx.send(Ok(incoming)).await.is_err() {
            return;
        }
    }
}

/// Writes `frame` with vectored writes (its record chunks are not copied).
async fn write<W: AsyncWrite + Unpin>(
    wr: &mut W,
    frame: Frame,
    timeout: Option<Duration>,
) -> Result<(), String> {
    // The frame's memory budget share is released once it is written (or given up).
    let _permit = frame.permit;
    let writing = write_chunks(wr, frame.chunks);
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, writing)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the client did not read its answers"))),
        None => writing.await,
    };
    result.map_err(|e| format!("write failed: {e}"))
}

async fn write_chunks<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut chunks: Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(64)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && first < chunks.len() {
            let len = chunks[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                chunks[first].advance(n);
                n = 0;
            }
        }
    }
    wr.flush().await
}
