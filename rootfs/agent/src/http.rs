//! A minimal HTTP/1.1 GET client over `std::net`, for the OCI registry the host exposes.
//!
//! Plain HTTP only, and only to loopback or QEMU user networking's 10.0.2.0/24 (the host alias
//! 10.0.2.2 and `guestfwd` addresses, which reach only what the host forwards): the registry
//! is untrusted anyway (every byte is checked against a sha256 digest), and refusing other hosts
//! keeps the agent from being pointed at the network. `Connection: close`, `Content-Length` or
//! chunked bodies, bounded sizes. The response parser [`parse_response`] is pure.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::Duration;

/// Largest response accepted (a layer blob of a test image).
pub const MAX_BODY_BYTES: usize = 256 << 20;
const MAX_HEAD_BYTES: usize = 64 << 10;

/// HTTP failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("host {0:?} is not loopback or in QEMU user networking's 10.0.2.0/24")]
    HostNotAllowed(String),
    #[error("bad URL {0:?} (expected http://host:port/path)")]
    Url(String),
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("response larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("GET {url}: {source}")]
    Io { url: String, source: std::io::Error },
}

/// A parsed response; header names are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Splits `http://host:port/path` and checks the host is allowed.
pub fn split_url(url: &str) -> Result<(String, u16, String), Error> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Url(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| Error::Url(url.into()))?),
        None => (authority, 80),
    };
    let allowed = host == "localhost"
        || match host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            Ok(ip) => {
                ip.is_loopback()
                    || matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [10, 0, 2] && v4 != Ipv4Addr::new(10, 0, 2, 255))
            }
            Err(_) => false,
        };
    if !allowed {
        return Err(Error::HostNotAllowed(host.into()));
    }
    Ok((host.into(), port, path.into()))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or_else(|| Error::Malformed("chunk size line".into()))?;
        let line =
            std::str::from_utf8(&data[..eol]).map_err(|_| Error::Malformed("chunk size".into()))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| Error::Malformed(format!("chunk size {line:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_BODY_BYTES || data.len() < size + 2 {
            return Err(Error::Malformed("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        if out.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge);
        }
        data = &data[size + 2..];
    }
}

/// Parses a complete response (the server closed the connection after it).
pub fn parse_response(raw: &[u8]) -> Result<Response, Error> {
    let head_end =
        find(raw, b"\r\n\r\n").ok_or_else(|| Error::Malformed("no end of headers".into()))?;
    let head = std::str::from_utf8(&raw[..head_end])
        .map_err(|_| Error::Malformed("headers not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(Error::Malformed(format!("status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| Error::Malformed(format!("status line {status_line:?}")))?;
    let mut headers = BTreeMap::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| Error::Malformed(format!("header {l:?}")))?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let rest = &raw[head_end + 4..];
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| Error::Malformed(format!("content-length {len:?}")))?;
        if rest.len() < len {
            return Err(Error::Malformed(format!(
                "body is {} bytes, content-length {len}",
                rest.len()
            )));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// GETs `url` with extra request headers.
pub fn get(url: &str, extra_headers: &[(&str, &str)]) -> Result<Response, Error> {
    let (host, port, path) = split_url(url)?;
    let io = |source| Error::Io {
        url: url.into(),
        source,
    };
    let mut stream = TcpStream::connect((host.as_str(), port)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io)?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nUser-Agent: cvm-agent\r\n");
    for (k, v) in extra_headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream
        .take((MAX_BODY_BYTES + MAX_HEAD_BYTES) as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(io)?;
    if raw.len() > MAX_BODY_BYTES + MAX_HEAD_BYTES {
        return Err(Error::TooLarge);
    }
    parse_response(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_qemu_host() {
        assert_eq!(
            split_url("http://127.0.0.1:5000/v2/").unwrap(),
            ("127.0.0.1".into(), 5000, "/v2/".into())
        );
        assert!(split_url("http://10.0.2.2:5000/v2/x").is_ok());
        assert!(split_url("http://10.0.2.100:5000/v2/x").is_ok());
        assert!(split_url("http://localhost/").is_ok());
        assert!(matches!(
            split_url("http://10.0.3.2:5000/"),
            Err(Error::HostNotAllowed(_))
        ));
        assert!(matches!(
            split_url("http://example.org/"),
            Err(Error::HostNotAllowed(_))
        ));
        assert!(matches!(
            split_url("https://127.0.0.1/"),
            Err(Error::Url(_))
        ));
    }

    #[test]
    fn content_length_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDocker-Content-Digest: sha256:x\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        assert_eq!(r.headers["docker-content-digest"], "sha256:x");
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn get_against_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                .unwrap();
            req
        });
        let r = get(&format!("http://{addr}/v2/"), &[("Accept", "x/y")]).unwrap();
        assert_eq!(r.body, b"hi");
        let req = t.join().unwrap();
        assert!(
            req.starts_with("GET /v2/ HTTP/1.1\r\n") && req.contains("Accept: x/y\r\n"),
            "{req}"
        );
    }
}
