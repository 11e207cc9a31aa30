//! `bazaar probe [URL]`: GET one URL and exit 0 if it answers 2xx, 1
//! otherwise. The container image has no shell and no curl, so its
//! HEALTHCHECK (and Compose's) run the binary itself. Without a URL it asks
//! `/healthz` of this container's own service, at `BAZAAR_LISTEN`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs as _};
use std::process::ExitCode;

use clap::Args;
use url::Url;

use bazaar_platform::probe::get_status;

/// Arguments of `bazaar probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// http:// URL to GET [default: http://<BAZAAR_LISTEN>/healthz, 0.0.0.0 read as 127.0.0.1]
    #[arg(value_name = "URL")]
    pub url: Option<String>,
}

/// Runs `bazaar probe`: 0 when the answer is 2xx, else 1 with the reason on
/// stderr (Docker reads any other code as unhealthy too, but reserves 2).
pub fn main(args: &ProbeArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &ProbeArgs) -> Result<(), String> {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let listen = std::env::var("BAZAAR_LISTEN")
                .map_err(|_| "no URL given and BAZAAR_LISTEN is unset".to_owned())?;
            default_url(&listen)?
        }
    };
    let (addr, path) = target(&url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let status = runtime
        .block_on(get_status(addr, &path))
        .map_err(|e| format!("{url}: {e}"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("{url}: status {status}"))
    }
}

/// `/healthz` at the address a service listens on; an unspecified address
/// (every interface) is reached on loopback.
fn default_url(listen: &str) -> Result<String, String> {
    let addr: SocketAddr = listen
        .trim()
        .parse()
        .map_err(|_| format!("BAZAAR_LISTEN={listen:?} is not HOST:PORT"))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/healthz",
        SocketAddr::new(ip, addr.port())
    ))
}

/// The address to connect to and the path (with query) to ask for.
fn target(url: &str) -> Result<(SocketAddr, String), String> {
    let parsed = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!("{url}: only http:// is probed"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {host} has no address"))?;
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((addr, path))
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    #[test]
    fn the_default_url_is_healthz_on_the_listen_address() {
        assert_eq!(
            default_url("0.0.0.0:7102").unwrap(),
            "http://127.0.0.1:7102/healthz"
        );
        assert_eq!(default_url("[::]:80").unwrap(), "http://[::1]:80/healthz");
        assert_eq!(
            default_url("10.1.2.3:8080").unwrap(),
            "http://10.1.2.3:8080/healthz"
        );
        assert!(default_url("nowhere").is_err());
    }

    #[test]
    fn targets_keep_path_and_query() {
        let (addr, path) = target("http://127.0.0.1:8222/healthz?js-enabled-only=true").unwrap();
        assert_eq!(addr, "127.0.0.1:8222".parse().unwrap());
        assert_eq!(path, "/healthz?js-enabled-only=true");
        let (addr, path) = target("http://[::1]/").unwrap();
        assert_eq!(addr, "[::1]:80".parse().unwrap());
        assert_eq!(path, "/");
        assert!(target("https://127.0.0.1/").is_err());
        assert!(target("nonsense").is_err());
    }

    /// A server answering one request with `status`.
    fn answer_once(status: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        });
        url
    }

    #[test]
    fn two_hundreds_pass_and_everything_else_fails() {
        let ok = ProbeArgs {
            url: Some(answer_once("200 OK")),
        };
        assert!(run(&ok).is_ok());
        let down = ProbeArgs {
            url: Some(answer_once("503 Service Unavailable")),
        };
        assert!(run(&down).unwrap_err().contains("503"));
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/healthz", l.local_addr().unwrap())
        };
        assert!(run(&ProbeArgs { url: Some(closed) }).is_err());
    }
}
