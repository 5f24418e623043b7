//! Accepting connections, plain or TLS, under limits: at most `max_connections` open (and
//! `max_per_ip` per address), request heads bounded in size, count and time, idle connections
//! closed. A slow client holds one connection slot for at most the header or idle timeout, and
//! never the sequencer (a submission is enqueued only once its whole body has arrived).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use crate::config::ConnectionsConfig;
use crate::tls::{PeerCertificate, Subject, TlsState};

/// A server's connection counters, for `/metrics`: kept across the listener's restarts.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections refused over `max_connections` or `max_per_ip`.
    pub refused: AtomicU64,
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` resolves, then lets
/// open connections finish their requests and close.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<TlsState>>,
    limits: ConnectionsConfig,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let slots = Arc::new(Slots {
        total: Arc::new(Semaphore::new(limits.max_connections)),
        per_ip: Mutex::new(HashMap::new()),
        max_per_ip: limits.max_per_ip,
        stats: stats.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match slots.take(peer.ip()) {
            Some(slot) => {
                tokio::spawn(connection(
                    stream,
                    peer,
                    slot,
                    app.clone(),
                    tls.clone(),
                    limits.clone(),
                    stop_rx.clone(),
                ));
            }
            None => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(refuse(stream, tls.is_none()));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it closes.
    let _ = slots
        .total
        .acquire_many(limits.max_connections as u32)
        .await;
    Ok(())
}

struct Slots {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    stats: Arc<ConnStats>,
}

/// A connection's place under the limits, given back when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let permit = self.total.clone().try_acquire_owned().ok()?;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            _permit: permit,
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.stats.open.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.slots.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Answers a connection over the limits: 503 for plain HTTP (TLS cannot answer before a
/// handshake, so it is closed).
async fn refuse(mut stream: TcpStream, plain: bool) {
    if plain {
        let body = r#"{"error":"too_many_connections","message":"the server has as many open connections as it allows (from this address or in all); retry later"}"#;
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let answer = async {
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            stream.shutdown().await?;
            // Read what the client sent, so that closing does not reset the connection before
            // it has read the answer.
            let mut sink = [0u8; 4096];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    app: Router,
    tls: Option<Arc<TlsState>>,
    limits: Arc<ConnectionsConfig>,
    stop: watch::Receiver<bool>,
) {
    let _slot = slot;
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    let header = Duration::from_millis(limits.header_timeout_ms);
    match tls {
        None => serve_io(io, peer, None, app, activity, &limits, stop).await,
        Some(tls) => {
            let Ok(Ok(io)) = tokio::time::timeout(header, tls.acceptor().accept(io)).await else {
                return;
            };
            let cert = io
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| Subject::of_certificate(c).ok())
                .map(|s| PeerCertificate(Arc::new(s)));
            serve_io(io, peer, cert, app, activity, &limits, stop).await
        }
    }
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    cert: Option<PeerCertificate>,
    app: Router,
    activity: Arc<Activity>,
    limits: &ConnectionsConfig,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if let Some(c) = &cert {
            req.extensions_mut().insert(c.clone());
        }
        let in_flight = InFlight::new(requests.clone());
        let answer = app.clone().oneshot(req);
        async move {
            let r = answer.await;
            drop(in_flight);
            r
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .max_concurrent_streams(256);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let wake = match closing {
            // A closing connection gets one request timeout to finish, then it is dropped.
            Some(deadline) => deadline,
            None => tokio::time::Instant::now() + activity.until_idle(idle),
        };
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = stop.changed(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + Duration::from_millis(limits.request_timeout_ms));
            }
            _ = tokio::time::sleep_until(wake) => {
                if closing.is_some() {
                    break;
                }
                if activity.until_idle(idle).is_zero() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(tokio::time::Instant::now() + Duration::from_millis(limits.request_timeout_ms));
                }
            }
        }
    }
}

/// When a connection last moved bytes, and how many of its requests are being answered.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Returns how long until the connection counts as idle (zero: it is idle now). A request
    /// being answered keeps it busy.
    fn until_idle(&self, idle: Duration) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return idle;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        (last + idle).saturating_sub(self.epoch.elapsed())
    }
}

/// One request being answered.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that records when bytes last moved.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
