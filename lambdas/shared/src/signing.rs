//! The `X-Microprocess-Signature` header.
//!
//! `v1` is the lowercase hex HMAC-SHA256, keyed with the UTF-8 bytes of the signing
//! secret, of `<t>.<METHOD>.<path-and-query as sent>.<raw body>` (body empty for GET).
//! The header is `t=<unix seconds>,v1=<hex>`; during key rotation several `v1=` values
//! follow `t=`, and a request is accepted when any of them matches any current secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// The largest clock difference the contract allows, in seconds.
pub const MAX_SKEW_SECONDS: u64 = 300;

/// Why a signature header was rejected; a service answers 401 to each of them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("signature header is malformed ({reason}); expected `t=<unix seconds>,v1=<hex>`")]
    Malformed { reason: String },
    #[error(
        "signature timestamp is {skew} s away from this clock; at most 300 s is accepted, \
         check the clocks and that the request is not replayed"
    )]
    Stale {
        /// `now - t`: positive when the request was signed in the past.
        skew: i64,
    },
    #[error(
        "signature does not match any signing secret; check that both sides use the same secret"
    )]
    Mismatch,
}

/// The `v1` value for one request: lowercase hex HMAC-SHA256 of
/// `<t>.<METHOD>.<path_and_query>.<body>`. The method is upper-cased, as sent on the wire.
pub fn sign(secret: &str, t: i64, method: &str, path_and_query: &str, body: &[u8]) -> String {
    hex::encode(
        signed_message(secret, t, method, path_and_query, body)
            .finalize()
            .into_bytes(),
    )
}

/// The header value `t=<t>,v1=<sig>[,v1=<sig>...]`.
pub fn signature_header<S: AsRef<str>>(t: i64, signatures: &[S]) -> String {
    let mut header = format!("t={t}");
    for signature in signatures {
        header.push_str(",v1=");
        header.push_str(signature.as_ref());
    }
    header
}

/// Checks a signature header against every current secret.
///
/// Accepts when any `v1` matches any secret, so a service that holds the old and the new
/// secret during rotation accepts requests signed with either. Comparison is constant
/// time. `now` is unix seconds; `max_skew` is usually [`MAX_SKEW_SECONDS`]. With no
/// secrets nothing can match, so the answer is [`VerifyError::Mismatch`]. Unknown keys in
/// the header (a future `v2=`) are ignored.
pub fn verify(
    secrets: &[&str],
    header: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
    max_skew: u64,
) -> Result<(), VerifyError> {
    let parsed = parse_header(header)?;
    let skew = now.saturating_sub(parsed.t);
    if skew.unsigned_abs() > max_skew {
        return Err(VerifyError::Stale { skew });
    }
    for secret in secrets {
        let mac = signed_message(secret, parsed.t, method, path_and_query, body);
        for candidate in &parsed.v1 {
            if mac.clone().verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::Mismatch)
}

struct ParsedHeader {
    t: i64,
    v1: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<ParsedHeader, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed { reason };
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let part = part.trim();
        let Some((key, value)) = part.split_once('=') else {
            return Err(malformed(format!("`{part}` is not `key=value`")));
        };
        match key {
            "t" => {
                if t.is_some() {
                    return Err(malformed("`t` appears more than once".into()));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed(format!("`t={value}` is not unix seconds")));
                }
                let seconds = value
                    .parse::<i64>()
                    .map_err(|_| malformed(format!("`t={value}` is out of range")))?;
                t = Some(seconds);
            }
            "v1" => {
                if value.len() != 64 {
                    return Err(malformed(format!(
                        "a `v1` value is {} characters; expected 64 hex digits",
                        value.len()
                    )));
                }
                let bytes =
                    hex::decode(value).map_err(|_| malformed("a `v1` value is not hex".into()))?;
                v1.push(bytes);
            }
            _ => {}
        }
    }
    let Some(t) = t else {
        return Err(malformed("no `t`".into()));
    };
    if v1.is_empty() {
        return Err(malformed("no `v1`".into()));
    }
    Ok(ParsedHeader { t, v1 })
}

fn signed_message(
    secret: &str,
    t: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this never fails.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(b".");
    mac.update(path_and_query.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "test-secret";
    const T: i64 = 1_793_502_000;

    #[test]
    fn known_vectors() {
        // Computed independently: printf '%s' '1793502000.POST./process.{"a":1}' |
        //   openssl dgst -sha256 -hmac test-secret
        assert_eq!(
            sign(SECRET, T, "POST", "/process", br#"{"a":1}"#),
            "6d0f98baa73437f12062638bb6e7fb2abbfb2b3c60f9f757b6322abeb757bfd4"
        );
        // GET: empty body after the last dot; the method is upper-cased.
        assert_eq!(
            sign(SECRET, T, "get", "/split?limit=10&cursor=abc", b""),
            "13addcd088a2f8a05285ba5077575a1f9f2f6711bdd659c3702fc9e3ed19897f"
        );
    }

    #[test]
    fn header_format() {
        assert_eq!(signature_header::<&str>(5, &[]), "t=5");
        assert_eq!(signature_header(5, &["aa", "bb"]), "t=5,v1=aa,v1=bb");
    }

    #[test]
    fn round_trip_and_tolerance() {
        let v1 = sign(SECRET, T, "GET", "/split?limit=10", b"");
        let header = signature_header(T, &[v1]);
        let check = |now| verify(&[SECRET], &header, "GET", "/split?limit=10", b"", now, 300);
        assert_eq!(check(T), Ok(()));
        assert_eq!(check(T + 300), Ok(()));
        assert_eq!(check(T - 300), Ok(()));
        assert_eq!(check(T + 301), Err(VerifyError::Stale { skew: 301 }));
        assert_eq!(check(T - 301), Err(VerifyError::Stale { skew: -301 }));
    }

    #[test]
    fn malformed_headers() {
        let v1 = sign(SECRET, T, "GET", "/", b"");
        for header in [
            String::new(),
            "t=1".into(),
            format!("v1={v1}"),
            format!("t=abc,v1={v1}"),
            format!("t=-5,v1={v1}"),
            format!("t=1,t=1,v1={v1}"),
            "t=1,v1=zz".into(),
            format!("t=1,v1={}", "z".repeat(64)),
            format!("t=1,{v1}"),
            format!("t=99999999999999999999,v1={v1}"),
        ] {
            assert!(
                matches!(
                    verify(&[SECRET], &header, "GET", "/", b"", 1, 300),
                    Err(VerifyError::Malformed { .. })
                ),
                "{header:?}"
            );
        }
    }

    #[test]
    fn spaces_and_unknown_keys_are_tolerated() {
        let v1 = sign(SECRET, T, "GET", "/", b"");
        let header = format!("t={T}, v0=old, v1={v1}");
        assert_eq!(verify(&[SECRET], &header, "GET", "/", b"", T, 300), Ok(()));
    }

    #[test]
    fn no_secrets_means_mismatch() {
        let header = signature_header(T, &[sign(SECRET, T, "GET", "/", b"")]);
        assert_eq!(
            verify(&[], &header, "GET", "/", b"", T, 300),
            Err(VerifyError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            secret in ".{0,40}",
            t in 0i64..4_000_000_000,
            method in "(GET|POST|PUT|get|post)",
            path in "/[ -~]{0,60}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let header = signature_header(t, &[sign(&secret, t, &method, &path, &body)]);
            prop_assert_eq!(verify(&[&secret], &header, &method, &path, &body, t, 300), Ok(()));
        }

        #[test]
        fn any_tampering_fails(
            t in 0i64..4_000_000_000,
            path in "/[ -~]{0,60}",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            extra in proptest::collection::vec(any::<u8>(), 1..8),
            flip in any::<prop::sample::Index>(),
            dt in 1i64..300,
        ) {
            let header = signature_header(t, &[sign(SECRET, t, "POST", &path, &body)]);
            let ok = |h: &str, p: &str, b: &[u8]| verify(&[SECRET], h, "POST", p, b, t, 300);

            // Body changed: a byte flipped, or bytes appended.
            if !body.is_empty() {
                let mut flipped = body.clone();
                let i = flip.index(flipped.len());
                flipped[i] ^= 0x01;
                prop_assert_eq!(ok(&header, &path, &flipped), Err(VerifyError::Mismatch));
            }
            let mut longer = body.clone();
            longer.extend_from_slice(&extra);
            prop_assert_eq!(ok(&header, &path, &longer), Err(VerifyError::Mismatch));

            // Path changed.
            let other_path = format!("{path}x");
            prop_assert_eq!(ok(&header, &other_path, &body), Err(VerifyError::Mismatch));

            // Method changed.
            prop_assert_eq!(
                verify(&[SECRET], &header, "PUT", &path, &body, t, 300),
                Err(VerifyError::Mismatch)
            );

            // `t` changed (within the skew, so only the signature can catch it).
            let v1 = header.split_once(",v1=").map(|(_, v)| v.to_owned()).unwrap_or_default();
            let moved = format!("t={},v1={v1}", t + dt);
            prop_assert_eq!(ok(&moved, &path, &body), Err(VerifyError::Mismatch));

            // Wrong secret.
            prop_assert_eq!(
                verify(&["other"], &header, "POST", &path, &body, t, 300),
                Err(VerifyError::Mismatch)
            );
        }

        #[test]
        fn rotation_accepts_any_v1_under_any_secret(
            secrets in proptest::collection::vec("[a-z0-9]{8,16}", 1..4),
            signer in any::<prop::sample::Index>(),
            position in any::<prop::sample::Index>(),
            decoys in 0usize..3,
            t in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let signing_secret = &secrets[signer.index(secrets.len())];
            let good = sign(signing_secret, t, "POST", "/p", &body);
            let mut values: Vec<String> = (0..decoys)
                .map(|i| sign(&format!("retired-{i}"), t, "POST", "/p", &body))
                .collect();
            values.insert(position.index(values.len() + 1), good);
            let header = signature_header(t, &values);
            let held: Vec<&str> = secrets.iter().map(String::as_str).collect();
            prop_assert_eq!(verify(&held, &header, "POST", "/p", &body, t, 300), Ok(()));
            // A service that holds none of the signing secrets rejects it.
            prop_assert_eq!(
                verify(&["unrelated"], &header, "POST", "/p", &body, t, 300),
                Err(VerifyError::Mismatch)
            );
        }
    }
}
