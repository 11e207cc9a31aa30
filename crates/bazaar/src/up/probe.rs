//! A minimal HTTP/1.1 GET for readiness: the launcher only needs a status
//! code from a process on loopback, not a client stack.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long a connection may take on loopback before we call it down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the status line may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET path` on `addr`; the status code of the answer.
pub async fn get_status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let mut stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: bazaar-launcher\r\nConnection: close\r\n\r\n"
    );
    let read_status = async {
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
    };
    timeout(ANSWER_TIMEOUT, read_status)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
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
}
