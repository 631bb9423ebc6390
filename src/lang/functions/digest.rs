//! Cryptographic digests for pseudonymising identifiers: `sha256` and
//! `hmac_sha256` (keyed, so a pseudonym cannot be reversed by hashing a list
//! of known names), both as lowercase hex.

use super::{arg_text, Prepared};
use crate::event::Value;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt::Write;

fn hex(bytes: &[u8]) -> Value {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    Value::String(s.into())
}

fn bytes_of(a: &[Value], i: usize) -> Result<Vec<u8>, String> {
    match &a[i] {
        Value::Bytes(b) => Ok(b.to_vec()),
        _ => Ok(arg_text(a, i)?.as_bytes().to_vec()),
    }
}

pub fn sha256(a: &[Value], _: &Prepared) -> Result<Value, String> {
    Ok(hex(&Sha256::digest(bytes_of(a, 0)?)))
}

pub fn hmac_sha256(a: &[Value], _: &Prepared) -> Result<Value, String> {
    let key = bytes_of(a, 1)?;
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(&bytes_of(a, 0)?);
    Ok(hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256(&[Value::from("abc")], &Prepared::None),
            Ok(Value::from(
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            ))
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_sha256(
                &[
                    Value::from("what do ya want for nothing?"),
                    Value::from("Jefe")
                ],
                &Prepared::None
            ),
            Ok(Value::from(
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ))
        );
    }
}
