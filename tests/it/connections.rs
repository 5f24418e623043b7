//! Connection limits and timeouts: raw TCP clients that hold connections, send headers one
//! byte at a time, or send too many headers, against the real app.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{self, audit};

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes) and returns what came.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn connection_limits_refuse_with_503_and_idle_connections_are_closed() {
    let s = harness::start_with(|c| {
        c.connections.max_connections = 16;
        c.connections.max_per_ip = 4;
        c.connections.idle_timeout_ms = 600;
    })
    .await;
    let a = addr(&s.url);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&a).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The fifth connection from this address is answered 503 and closed.
    let mut fifth = TcpStream::connect(&a).await.unwrap();
    fifth
        .write_all(b"GET /v1/log HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut fifth, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");

    // Idle connections are closed by the server after the idle timeout.
    let started = Instant::now();
    for mut c in held {
        let rest = read_to_close(&mut c, Duration::from_secs(5)).await;
        assert_eq!(rest.as_deref(), Some(""), "an idle connection stayed open");
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "idle connections closed after {waited:?}"
    );
    // And the address may connect again.
    let r = s.submit(audit(1), None).await;
    assert_eq!(r.index, 0);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("govledger_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    // Counted per server: exactly this server's one refusal.
    assert_eq!(refused, 1.0, "{metrics}");
    s.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_do_not_block_other_clients() {
    let s = harness::start_with(|c| {
        c.connections.header_timeout_ms = 500;
        c.connections.idle_timeout_ms = 10_000;
    })
    .await;
    let a = addr(&s.url);
    let mut slow = TcpStream::connect(&a).await.unwrap();
    let started = Instant::now();
    slow.write_all(b"POST /v1/entries HTTP/1.1\r\n")
        .await
        .unwrap();
    // Meanwhile other clients are served.
    assert_eq!(s.submit(audit(1), None).await.index, 0);
    // One header byte every 20 ms: the server cuts the connection at the header timeout.
    for b in b"x-slow: 1\r\n".iter().cycle() {
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a client sending headers byte by byte held its connection"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(s.submit(audit(2), None).await.index, 1);
    s.stop().await;
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let s = harness::start_with(|c| {
        c.connections.max_headers = 32;
        c.connections.max_header_bytes = 16 << 10;
    })
    .await;
    let a = addr(&s.url);
    let many: String = (0..40).map(|i| format!("x-h{i}: v\r\n")).collect();
    let big = format!("x-big: {}\r\n", "a".repeat(20 << 10));
    for extra in [many, big] {
        let mut c = TcpStream::connect(&a).await.unwrap();
        c.write_all(format!("GET /v1/log HTTP/1.1\r\nhost: x\r\n{extra}\r\n").as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut c, Duration::from_secs(5)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // Within the limits the same request works.
    assert_eq!(s.get("/v1/log").await.status(), 200);
    s.stop().await;
}

#[tokio::test]
async fn a_slow_body_gets_408_and_holds_nothing() {
    let s = harness::start_with(|c| {
        c.connections.request_timeout_ms = 500;
    })
    .await;
    let mut slow = TcpStream::connect(addr(&s.url)).await.unwrap();
    let started = Instant::now();
    slow.write_all(
        b"POST /v1/entries HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"kind\":",
    )
    .await
    .unwrap();
    // The body never completes; meanwhile others append.
    assert_eq!(s.submit(audit(1), None).await.index, 0);
    let answer = read_to_close(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(s.tree_size().await, 1);
    s.stop().await;
}
