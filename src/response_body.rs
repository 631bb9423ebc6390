//! Reading the body of an HTTP answer from a peer with a cap: the sink's
//! answers from OpenObserve, scraped expositions, `shipctl query` results.
//! The body is streamed chunk by chunk and never held beyond the cap; what
//! lies past it is left unread and dropped with the connection. Every read
//! of a peer's body goes through here, so no peer can make shipd buffer
//! more than its caller allows.

/// The start of a body, at most the cap.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyPrefix {
    pub bytes: Vec<u8>,
    /// The body went on past the cap; the rest was not read.
    pub truncated: bool,
}

/// Reads at most `cap` bytes of `response`'s body, then drops the response
/// (closing its connection when body is left). A `Content-Length` over the
/// cap is taken at its word: `truncated` without waiting for the bytes.
pub async fn read_prefix(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<BodyPrefix, reqwest::Error> {
    let announced = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok());
    let mut prefix = BodyPrefix {
        bytes: Vec::with_capacity(announced.unwrap_or(0).min(cap)),
        truncated: false,
    };
    while let Some(chunk) = response.chunk().await? {
        let room = cap - prefix.bytes.len();
        if chunk.len() > room {
            prefix.bytes.extend_from_slice(&chunk[..room]);
            prefix.truncated = true;
            break;
        }
        prefix.bytes.extend_from_slice(&chunk);
    }
    Ok(prefix)
}

/// Reads the whole body when it fits in `cap` bytes, else fails with
/// [`TooLarge`] as soon as the body is known to be larger (from its
/// `Content-Length`, or once `cap` bytes were read).
pub async fn read_capped(
    response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, CappedReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(CappedReadError::TooLarge(TooLarge { cap }));
    }
    let prefix = read_prefix(response, cap).await?;
    if prefix.truncated {
        return Err(CappedReadError::TooLarge(TooLarge { cap }));
    }
    Ok(prefix.bytes)
}

/// A body was larger than its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the answer is larger than {} bytes", .cap)]
pub struct TooLarge {
    pub cap: usize,
}

/// Why [`read_capped`] returned no body.
#[derive(Debug, thiserror::Error)]
pub enum CappedReadError {
    #[error(transparent)]
    TooLarge(TooLarge),
    #[error(transparent)]
    Read(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves one HTTP/1.1 answer with `head` and then `body_len` bytes of
    /// `x` (chunked when `content_length` is false), and reports how many
    /// body bytes it managed to write before the client hung up.
    fn serve_once(
        body_len: usize,
        content_length: bool,
    ) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Bounded: a client that neither reads nor hangs up fails the test.
            s.set_write_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut request = [0u8; 4096];
            let _ = s.read(&mut request);
            let head = if content_length {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
            };
            if s.write_all(head.as_bytes()).is_err() {
                return 0;
            }
            let chunk = vec![b'x'; 16 * 1024];
            let mut sent = 0;
            while sent < body_len {
                let n = chunk.len().min(body_len - sent);
                let ok = if content_length {
                    s.write_all(&chunk[..n]).is_ok()
                } else {
                    s.write_all(format!("{n:x}\r\n").as_bytes()).is_ok()
                        && s.write_all(&chunk[..n]).is_ok()
                        && s.write_all(b"\r\n").is_ok()
                };
                if !ok {
                    break;
                }
                sent += n;
            }
            if !content_length {
                let _ = s.write_all(b"0\r\n\r\n");
            }
            sent
        });
        (url, handle)
    }

    async fn get(url: &str) -> reqwest::Response {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        client.get(url).send().await.unwrap()
    }

    /// Multi-threaded, as in shipd: the connection task keeps running (and
    /// closes the connection of a dropped answer) between `block_on`s.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_body_past_the_cap_is_cut_and_the_rest_left_unread() {
        let rt = runtime();
        for content_length in [true, false] {
            let (url, server) = serve_once(512 * 1024 * 1024, content_length);
            let prefix = rt.block_on(async {
                let resp = get(&url).await;
                read_prefix(resp, 1000).await.unwrap()
            });
            assert_eq!(prefix.bytes.len(), 1000);
            assert!(prefix.truncated);
            let sent = server.join().unwrap();
            assert!(
                sent < 64 * 1024 * 1024,
                "the server stopped early ({sent} bytes written)"
            );
        }
    }

    #[test]
    fn a_body_within_the_cap_is_read_whole() {
        let rt = runtime();
        for content_length in [true, false] {
            let (url, server) = serve_once(1000, content_length);
            let body = rt.block_on(async {
                let resp = get(&url).await;
                read_capped(resp, 1000).await.unwrap()
            });
            assert_eq!(body, vec![b'x'; 1000]);
            server.join().unwrap();
        }
    }

    #[test]
    fn a_body_over_the_cap_is_refused_by_read_capped() {
        let rt = runtime();
        for content_length in [true, false] {
            let (url, server) = serve_once(1001, content_length);
            let err = rt.block_on(async {
                let resp = get(&url).await;
                read_capped(resp, 1000).await.unwrap_err()
            });
            assert!(
                matches!(err, CappedReadError::TooLarge(TooLarge { cap: 1000 })),
                "{err:?}"
            );
            server.join().unwrap();
        }
    }
}
