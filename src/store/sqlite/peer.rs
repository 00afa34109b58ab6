//! Peer addresses as `LogRows` keeps them: the address (`Peers` dictionary) and the
//! port (an integer) apart. A dictionary of whole `ADDRESS:PORT` texts would grow by a
//! name per connection (per datagram, for senders that open a socket per message); one
//! of addresses stays as small as the set of senders.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// `1.2.3.4:514` → (`1.2.3.4`, 514), `[::1]:514` → (`[::1]`, 514). Text that does not
/// end in a canonical port (digits without a leading zero, at most 65535) after a
/// non-empty address is kept whole, with no port: `address:port` always gives the text
/// back exactly.
pub fn split(peer: &str) -> (&str, Option<u16>) {
    let Some((address, port)) = peer.rsplit_once(':') else {
        return (peer, None);
    };
    let canonical = !address.is_empty()
        && !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && (port == "0" || !port.starts_with('0'));
    match port.parse::<u16>() {
        Ok(p) if canonical => (address, Some(p)),
        _ => (peer, None),
    }
}

/// `logrelay_peer_address(PEER)` and `logrelay_peer_port(PEER)`: [`split`] for SQL
/// (schema migration 5 moves stored peers with them).
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("logrelay_peer_address", 1, flags, |ctx| {
        Ok(ctx
            .get_raw(0)
            .as_str_or_null()
            .unwrap_or(None)
            .map(|p| split(p).0.to_string()))
    })?;
    conn.create_scalar_function("logrelay_peer_port", 1, flags, |ctx| {
        Ok(ctx
            .get_raw(0)
            .as_str_or_null()
            .unwrap_or(None)
            .and_then(|p| split(p).1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_gives_the_text_back() {
        for (peer, want) in [
            ("192.0.2.1:514", ("192.0.2.1", Some(514))),
            ("[::1]:65535", ("[::1]", Some(65535))),
            ("h:0", ("h", Some(0))),
            ("h:0514", ("h:0514", None)),
            ("h:65536", ("h:65536", None)),
            (":514", (":514", None)),
            ("h:", ("h:", None)),
            ("h:+5", ("h:+5", None)),
            ("unix", ("unix", None)),
            ("", ("", None)),
        ] {
            let got = split(peer);
            assert_eq!(got, want, "{peer}");
            let back = match got {
                (a, Some(p)) => format!("{a}:{p}"),
                (a, None) => a.to_string(),
            };
            assert_eq!(back, peer);
        }
    }
}
