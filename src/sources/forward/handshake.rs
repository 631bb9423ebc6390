//! The optional shared-key handshake of the Forward protocol v1. When the
//! source has a `shared_key`, the server speaks first:
//!
//! - server: `["HELO", {"nonce": <random bytes>, "auth": "", "keepalive": true}]`
//! - client: `["PING", client_hostname, shared_key_salt, hex(sha512(salt + client_hostname + nonce + key)), username, password_digest]`
//! - server: `["PONG", true, "", server_hostname, hex(sha512(salt + server_hostname + nonce + key))]`,
//!   or `["PONG", false, reason, "", ""]` and the connection is closed.
//!
//! User authentication (`auth` salt, username and password) is not
//! offered: `auth` is empty and the client's username and password are
//! ignored. Nothing here does I/O.

use rmpv::{Value, ValueRef};

/// What the server proves itself with and checks clients against.
#[derive(Debug, Clone)]
pub struct SharedKey {
    pub key: String,
    /// The server's name in its PONG (`self_hostname`).
    pub hostname: String,
}

/// Why a client was not let in (the reason its PONG carries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("expected a PING message after HELO")]
    NotPing,
    #[error("the PING message is malformed: {0}")]
    Malformed(&'static str),
    #[error("shared_key mismatch")]
    WrongKey,
}

/// A fresh nonce for one connection's HELO.
pub fn nonce() -> [u8; 16] {
    rand::random()
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// The HELO message offering `nonce`.
pub fn helo(nonce: &[u8]) -> Vec<u8> {
    encode(&Value::Array(vec![
        Value::from("HELO"),
        Value::Map(vec![
            (Value::from("nonce"), Value::Binary(nonce.to_vec())),
            (Value::from("auth"), Value::from("")),
            (Value::from("keepalive"), Value::from(true)),
        ]),
    ]))
}

/// `hex(sha512(salt + hostname + nonce + key))`.
pub fn digest(salt: &[u8], hostname: &[u8], nonce: &[u8], key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA512);
    for part in [salt, hostname, nonce, key] {
        ctx.update(part);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equal in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bytes_of<'a>(v: &'a ValueRef<'a>) -> Option<std::borrow::Cow<'a, [u8]>> {
    match v {
        ValueRef::String(s) => Some(match s.as_str() {
            Some(text) => std::borrow::Cow::Borrowed(text.as_bytes()),
            None => std::borrow::Cow::Owned(s.into_bytes()),
        }),
        ValueRef::Binary(b) => Some(std::borrow::Cow::Borrowed(b)),
        _ => None,
    }
}

/// Checks the client's PING (one whole msgpack message) against `nonce`;
/// answers the PONG to send, and whether the client is in.
pub fn answer_ping(
    frame: &[u8],
    nonce: &[u8],
    shared: &SharedKey,
) -> (Vec<u8>, Result<String, AuthError>) {
    let pong = |ok: bool, reason: &str, hostname: &str, proof: String| {
        encode(&Value::Array(vec![
            Value::from("PONG"),
            Value::from(ok),
            Value::from(reason),
            Value::from(hostname),
            Value::from(proof),
        ]))
    };
    match check_ping(frame, nonce, shared) {
        Ok((client, salt)) => {
            let proof = digest(
                &salt,
                shared.hostname.as_bytes(),
                nonce,
                shared.key.as_bytes(),
            );
            (pong(true, "", &shared.hostname, proof), Ok(client))
        }
        Err(e) => (pong(false, &e.to_string(), "", String::new()), Err(e)),
    }
}

/// The client's hostname and salt when its digest proves the shared key.
fn check_ping(
    frame: &[u8],
    nonce: &[u8],
    shared: &SharedKey,
) -> Result<(String, Vec<u8>), AuthError> {
    let Ok(ValueRef::Array(items)) = rmpv::decode::read_value_ref(&mut &frame[..]) else {
        return Err(AuthError::NotPing);
    };
    if items.first().and_then(super::decode::str_of) != Some("PING") {
        return Err(AuthError::NotPing);
    }
    if items.len() < 4 {
        return Err(AuthError::Malformed("fewer than four elements"));
    }
    let hostname =
        bytes_of(&items[1]).ok_or(AuthError::Malformed("the hostname is not a string"))?;
    let salt = bytes_of(&items[2]).ok_or(AuthError::Malformed("the salt is not a string"))?;
    let digest_sent =
        bytes_of(&items[3]).ok_or(AuthError::Malformed("the digest is not a string"))?;
    let expected = digest(&salt, &hostname, nonce, shared.key.as_bytes());
    if !same(expected.as_bytes(), &digest_sent) {
        return Err(AuthError::WrongKey);
    }
    Ok((
        String::from_utf8_lossy(&hostname).into_owned(),
        salt.into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(hostname: &str, salt: &str, digest: &str) -> Vec<u8> {
        encode(&Value::Array(vec![
            "PING".into(),
            hostname.into(),
            salt.into(),
            digest.into(),
            "".into(),
            "".into(),
        ]))
    }

    fn shared() -> SharedKey {
        SharedKey {
            key: "s3cret".into(),
            hostname: "pi-1".into(),
        }
    }

    fn decode(bytes: &[u8]) -> Value {
        rmpv::decode::read_value(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn sha512_hex_of_the_concatenation() {
        // sha512("abc"), from FIPS 180-2.
        assert!(digest(b"a", b"b", b"c", b"").starts_with("ddaf35a193617aba"));
        assert_eq!(digest(b"", b"", b"", b"").len(), 128);
    }

    #[test]
    fn the_right_key_is_answered_with_a_pong_proving_the_server_knows_it() {
        let nonce = nonce();
        let d = digest(b"salty", b"app-host", &nonce, b"s3cret");
        let (pong, result) = answer_ping(&ping("app-host", "salty", &d), &nonce, &shared());
        assert_eq!(result, Ok("app-host".into()));
        let Value::Array(items) = decode(&pong) else {
            panic!()
        };
        assert_eq!(items[0], Value::from("PONG"));
        assert_eq!(items[1], Value::from(true));
        assert_eq!(items[3], Value::from("pi-1"));
        assert_eq!(
            items[4],
            Value::from(digest(b"salty", b"pi-1", &nonce, b"s3cret"))
        );
    }

    #[test]
    fn a_wrong_key_is_refused_with_the_reason() {
        let nonce = nonce();
        let d = digest(b"salty", b"app-host", &nonce, b"guess");
        let (pong, result) = answer_ping(&ping("app-host", "salty", &d), &nonce, &shared());
        assert_eq!(result, Err(AuthError::WrongKey));
        let Value::Array(items) = decode(&pong) else {
            panic!()
        };
        assert_eq!(items[1], Value::from(false));
        assert_eq!(items[2], Value::from("shared_key mismatch"));
    }

    #[test]
    fn events_instead_of_a_ping_are_refused() {
        let events = encode(&Value::Array(vec![
            "tag".into(),
            Value::from(1),
            Value::Map(vec![]),
        ]));
        assert_eq!(
            answer_ping(&events, &nonce(), &shared()).1,
            Err(AuthError::NotPing)
        );
    }
}
