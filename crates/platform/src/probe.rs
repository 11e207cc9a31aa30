//! A minimal HTTP/1.1 GET for health and readiness: the launcher waiting
//! for its children, and a client checking whether an ejected instance is
//! back, only need a status code, not a client stack.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a connection and the status line may take by default.
pub const LIMIT: Duration = Duration::from_secs(2);

/// `GET path` on `authority` (`host:port`), within [`LIMIT`]; the status
/// code of the answer.
pub async fn get_status(authority: impl std::fmt::Display, path: &str) -> io::Result<u16> {
    get_status_within(authority, path, LIMIT).await
}

/// `GET path` on `authority` (`host:port`); the status code of the answer,
/// or an error when connecting and reading the status line take longer than
/// `limit` in all (a frozen process accepts connections but never answers).
pub async fn get_status_within(
    authority: impl std::fmt::Display,
    path: &str,
    limit: Duration,
) -> io::Result<u16> {
    let authority = authority.to_string();
    timeout(limit, ask(&authority, path))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
}

async fn ask(authority: &str, path: &str) -> io::Result<u16> {
    let mut stream = TcpStream::connect(authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: bazaar-probe\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    // The status line is all we need; stop reading once we have it.
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 256 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no HTTP status line in the answer",
        )
    })
}

/// The status code of `HTTP/1.x NNN ...`.
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"),
            Some(200)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.0 204\r\n"), Some(204));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[tokio::test]
    async fn asks_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 512];
            let n = s.read(&mut req).await.unwrap();
            assert!(req[..n].starts_with(b"GET /readyz HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        assert_eq!(get_status(addr, "/readyz").await.unwrap(), 503);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn nobody_listening_is_an_error() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(get_status(addr, "/readyz").await.is_err());
    }

    #[tokio::test]
    async fn a_silent_listener_is_an_error_within_the_limit() {
        // Accepted by the kernel, never answered: what a frozen process does.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let error = get_status_within(addr, "/readyz", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(listener);
    }
}
