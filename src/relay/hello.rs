//! The native protocol's optional hello line (docs/PROTOCOL.md): a first line
//! `{"hello":1,"client":"NAME","acks":true}` (a `hello` key and no `message` key) is
//! answered `{"hello":1,"acks":true|false}`. What a connection sent first that is not a
//! hello is handed back untouched, so clients that never heard of hellos (the original
//! Python client, syslog senders) work exactly as before.

use super::auth::{Auth, Refusal};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The longest first line looked at as a possible hello.
const MAX_HELLO: usize = 8 * 1024;
/// The longest client name kept (it is a key in the store).
const MAX_CLIENT: usize = 256;

/// What a client said in its hello.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The name under which the relay remembers the client's last sequence number.
    pub client: Option<String>,
    pub acks: bool,
    /// For `auth-tokens-file`; never logged.
    pub token: Option<String>,
    /// A forwarding relay: its lines carry the original sender's `peer` and `protocol`.
    pub forwarding: bool,
}

/// Who may pass the hello: the relay's tokens and whether a client certificate already
/// authenticated the connection.
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub auth: &'a Auth,
    pub authenticated: bool,
}

impl Gate<'_> {
    /// A given token must be valid (when the relay has tokens); with `auth-required`,
    /// a connection without a certificate needs one.
    fn admit(&self, hello: Option<&Hello>) -> Result<(), (Refusal, &'static str)> {
        let tokens = self.auth.tokens();
        let token = hello.and_then(|h| h.token.as_deref());
        let token_ok = match token {
            Some(t) if !tokens.is_empty() => {
                if !tokens.check(t) {
                    return Err((Refusal::BadToken, "token not accepted"));
                }
                true
            }
            _ => false,
        };
        if self.auth.required && !self.authenticated && !token_ok {
            return Err(match hello {
                Some(_) => (Refusal::MissingToken, "a token is required"),
                None => (
                    Refusal::MissingToken,
                    "authentication required: send a hello line with a token first",
                ),
            });
        }
        Ok(())
    }
}

async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, why: Refusal, text: &str) -> Refusal {
    let mut line = String::from("{\"error\":");
    crate::message::write_json_str(text, &mut line);
    line.push_str(",\"reason\":\"");
    line.push_str(why.name());
    line.push_str("\"}\n");
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
    why
}

/// Reads what is needed to tell whether the connection starts with a hello and answers
/// it. Returns the hello (if there was one) and the bytes read that belong to the data.
pub async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    idle: Duration,
    shutdown: &CancellationToken,
    gate: Gate<'_>,
) -> Result<(Option<Hello>, Vec<u8>), Refusal> {
    let mut first = Vec::new();
    let line_end = loop {
        // Syslog and anything else that is not JSON is data from its first byte.
        if first.first().is_some_and(|&b| b != b'{') {
            break None;
        }
        if let Some(i) = memchr::memchr(b'\n', &first) {
            break Some(i);
        }
        if first.len() >= MAX_HELLO {
            break None;
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read(&mut chunk)) => r,
            _ = shutdown.cancelled() => break None,
        };
        match read {
            Ok(Ok(n)) if n > 0 => first.extend_from_slice(&chunk[..n]),
            _ => break None, // EOF, error or idle: whatever came is handled as data
        }
    };
    let Some((hello, end)) = line_end.and_then(|i| Some((parse_hello(&first[..i])?, i))) else {
        if let Err((why, text)) = gate.admit(None) {
            return Err(refuse(stream, why, text).await);
        }
        return Ok((None, first));
    };
    if let Err((why, text)) = gate.admit(Some(&hello)) {
        return Err(refuse(stream, why, text).await);
    }
    let answer: &[u8] = if hello.acks {
        b"{\"hello\":1,\"acks\":true}\n"
    } else {
        b"{\"hello\":1,\"acks\":false}\n"
    };
    if let Err(e) = stream.write_all(answer).await {
        tracing::debug!(error = %e, "cannot answer hello");
    }
    first.drain(..=end);
    Ok((Some(hello), first))
}

/// A hello is a JSON object with a `hello` key and no `message` key.
pub fn parse_hello(line: &[u8]) -> Option<Hello> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let obj = v.as_object()?;
    if !obj.contains_key("hello") || obj.contains_key("message") {
        return None;
    }
    let client = obj
        .get("client")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())
        .map(|c| truncate(c, MAX_CLIENT).to_string());
    Some(Hello {
        client,
        acks: obj.get("acks").and_then(|a| a.as_bool()).unwrap_or(false),
        token: obj
            .get("token")
            .and_then(|t| t.as_str())
            .map(str::to_string),
        forwarding: obj
            .get("forwarding")
            .and_then(|f| f.as_bool())
            .unwrap_or(false),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The SD element the JSON parser made of a line's unknown keys: its last `fields`
/// element (the parser adds it after the line's own `structured_data`, which may hold a
/// `fields` element of its own, e.g. a record forwarded with its extra fields: those are
/// the sender's data, never the protocol's).
fn extras(m: &crate::message::LogMessage<'_>) -> Option<usize> {
    m.structured_data
        .iter()
        .rposition(|e| e.id == crate::protocol::json::EXTRA_FIELDS_ID)
}

/// Takes the sequence number out of a native message on an acknowledged connection:
/// the JSON parser keeps unknown keys such as `seq` as parameters of the SD element
/// `fields`; this one is the protocol's, not the sender's data, so it is removed.
pub fn take_seq(m: &mut crate::message::LogMessage<'_>) -> Option<u64> {
    let ei = extras(m)?;
    let element = &mut m.structured_data[ei];
    let pi = element.params.iter().position(|(k, _)| k == "seq")?;
    let seq = element.params[pi].1.parse().ok()?;
    element.params.remove(pi);
    if element.params.is_empty() {
        m.structured_data.remove(ei);
    }
    Some(seq)
}

/// Takes a forwarded record's origin out of a native message from a forwarding relay
/// (docs/PROTOCOL.md, "Forwarding"): `peer` and `protocol`, kept by the JSON parser as
/// parameters of the SD element `fields`, become the record's own, so the store shows
/// the original sender rather than the last hop. A `protocol` that names none of the
/// four is left where it is (as data); without `peer` the hop's own peer stays.
pub fn take_origin(m: &mut crate::message::LogMessage<'_>) {
    let Some(ei) = extras(m) else {
        return;
    };
    let element = &mut m.structured_data[ei];
    if let Some(pi) = element.params.iter().position(|(k, _)| k == "protocol")
        && let Some(p) = crate::message::Protocol::from_name(&element.params[pi].1)
    {
        m.protocol = p;
        element.params.remove(pi);
    }
    if let Some(pi) = element.params.iter().position(|(k, _)| k == "peer") {
        m.peer = Some(element.params.remove(pi).1);
    }
    if element.params.is_empty() {
        m.structured_data.remove(ei);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_a_hello_key_without_message() {
        assert_eq!(
            parse_hello(br#"{"hello":1,"client":"x","acks":true,"token":"s"}"#),
            Some(Hello {
                client: Some("x".into()),
                acks: true,
                token: Some("s".into()),
                forwarding: false,
            })
        );
        assert!(
            parse_hello(br#"{"hello":1,"client":"x","acks":true,"forwarding":true}"#)
                .unwrap()
                .forwarding
        );
        assert_eq!(parse_hello(br#"{"hello":1}"#), Some(Hello::default()));
        assert!(parse_hello(br#"{"hello":1,"message":"hi"}"#).is_none());
        assert!(parse_hello(br#"{"level":"INFO","message":"hi"}"#).is_none());
        assert!(parse_hello(b"{not json").is_none());
        assert!(parse_hello(b"<13>Jan  1 00:00:00 h x: y").is_none());
    }

    #[test]
    fn seq_is_taken_out_of_the_extras() {
        let now = chrono::Utc::now();
        let mut m =
            crate::protocol::json::parse(br#"{"seq":42,"message":"m","user":"bob"}"#, now).unwrap();
        assert_eq!(take_seq(&mut m), Some(42));
        assert_eq!(
            m.structured_data_json().as_deref(),
            Some(r#"{"fields":{"user":"bob"}}"#)
        );
        let mut m = crate::protocol::json::parse(br#"{"seq":7,"message":"m"}"#, now).unwrap();
        assert_eq!(take_seq(&mut m), Some(7));
        assert!(m.structured_data.is_empty());
        let mut m = crate::protocol::json::parse(br#"{"message":"m"}"#, now).unwrap();
        assert_eq!(take_seq(&mut m), None);
    }

    #[test]
    fn a_forwarded_origin_replaces_the_hops_peer_and_protocol() {
        use crate::message::Protocol;
        let now = chrono::Utc::now();
        let line = br#"{"message":"m","protocol":"rfc3164","peer":"10.1.2.3:514","user":"bob"}"#;
        let mut m = crate::protocol::json::parse(line, now).unwrap();
        m.peer = Some("127.0.0.1:40000".into());
        take_origin(&mut m);
        assert_eq!(m.protocol, Protocol::Rfc3164);
        assert_eq!(m.peer.as_deref(), Some("10.1.2.3:514"));
        assert_eq!(
            m.structured_data_json().as_deref(),
            Some(r#"{"fields":{"user":"bob"}}"#)
        );
        // A forwarded record's own `fields` (its sender's extra keys) stay its data.
        let line = br#"{"seq":3,"message":"m","structured_data":{"fields":{"peer":"192.0.2.66:1","seq":"99"}},"protocol":"json","peer":"10.1.2.3:514"}"#;
        let mut m = crate::protocol::json::parse(line, now).unwrap();
        assert_eq!(take_seq(&mut m), Some(3));
        take_origin(&mut m);
        assert_eq!(
            (m.protocol, m.peer.as_deref()),
            (Protocol::Json, Some("10.1.2.3:514"))
        );
        assert_eq!(
            m.structured_data_json().as_deref(),
            Some(r#"{"fields":{"peer":"192.0.2.66:1","seq":"99"}}"#)
        );
        // A protocol that is none of the four stays data; no peer: the hop's stays.
        let line = br#"{"message":"m","protocol":"carrier-pigeon"}"#;
        let mut m = crate::protocol::json::parse(line, now).unwrap();
        m.peer = Some("127.0.0.1:40000".into());
        take_origin(&mut m);
        assert_eq!(m.protocol, Protocol::Json);
        assert_eq!(m.peer.as_deref(), Some("127.0.0.1:40000"));
        assert_eq!(
            m.structured_data_json().as_deref(),
            Some(r#"{"fields":{"protocol":"carrier-pigeon"}}"#)
        );
    }
}
