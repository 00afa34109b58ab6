//! The native protocol: one JSON object per line.
//!
//! `message` is required; `level`, `source`, `timestamp` (RFC 3339 or epoch seconds),
//! `hostname`, `facility`, `procid`, `msgid` and `structured_data` (the stored shape,
//! SD-ID → PARAM → value) are optional. Any other key is kept, not dropped: scalar
//! extras become parameters of the SD element `fields`. The original Python client's
//! `{"level":"INFO","message":"…","source":"MyService"}` is the minimal form.

use crate::message::{Level, LogMessage, Protocol, SdElement};
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// SD-ID under which unknown JSON keys are kept.
pub const EXTRA_FIELDS_ID: &str = "fields";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a JSON object: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("JSON line has no \"message\"")]
    NoMessage,
}

/// Parses one NDJSON line. `received` is used when the line carries no timestamp.
pub fn parse(line: &[u8], received: DateTime<Utc>) -> Result<LogMessage<'_>, Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let fields = de.deserialize_map(LineVisitor { received })?;
    de.end()?;
    fields.ok_or(Error::NoMessage)
}

struct LineVisitor {
    received: DateTime<Utc>,
}

/// A JSON scalar read as text (`"x"`, `5`, `true`), or nothing for null/objects/arrays.
#[derive(Default)]
struct Scalar<'a>(Option<Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar(Some(Cow::Borrowed(if v {
                    "true"
                } else {
                    "false"
                }))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `structured_data` in the stored shape: {"id": {"param": "v" | ["v", …]}}.
struct SdObject<'a>(Vec<SdElement<'a>>);

impl<'de> serde::Deserialize<'de> for SdObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let elements = Option::<OrderedMap<OrderedMap<Values<'de>>>>::deserialize(d)?
            .map_or_else(Vec::new, |ids| ids.0)
            .into_iter()
            .map(|(id, params)| SdElement {
                id,
                params: params
                    .0
                    .into_iter()
                    .flat_map(|(name, values)| values.0.into_iter().map(move |v| (name.clone(), v)))
                    .collect(),
            })
            .collect();
        Ok(SdObject(elements))
    }
}

/// A JSON object as key/value pairs in input order.
struct OrderedMap<V>(Vec<(Cow<'static, str>, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, V>()? {
                    out.push((Cow::Owned(k), v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// One parameter value or an array of them (a repeated PARAM).
struct Values<'a>(Vec<Cow<'a, str>>);

impl<'de> serde::Deserialize<'de> for Values<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum One {
            Many(Vec<String>),
            One(String),
        }
        Ok(match One::deserialize(d)? {
            One::Many(v) => Values(v.into_iter().map(Cow::Owned).collect()),
            One::One(s) => Values(vec![Cow::Owned(s)]),
        })
    }
}

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Option<LogMessage<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with a \"message\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = LogMessage::new("", Level::Info, self.received);
        let mut has_message = false;
        let mut extras: Vec<(Cow<'de, str>, Cow<'de, str>)> = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "message" => {
                    if let Some(v) = map.next_value::<Scalar>()?.0 {
                        m.message = v;
                        has_message = true;
                    }
                }
                "structured_data" => {
                    m.structured_data = map.next_value::<SdObject>()?.0;
                }
                _ => {
                    let Some(value) = map.next_value::<Scalar>()?.0 else {
                        continue;
                    };
                    if let Err(value) = apply_field(&mut m, &key, value) {
                        extras.push((key, value)); // kept, not lost
                    }
                }
            }
        }
        if !extras.is_empty() {
            m.structured_data.push(SdElement {
                id: Cow::Borrowed(EXTRA_FIELDS_ID),
                params: extras,
            });
        }
        m.protocol = Protocol::Json;
        Ok(has_message.then_some(m))
    }
}

/// Sets a known field from its text; gives the value back when the key is unknown or
/// the value not understood (the caller keeps it as an extra field).
fn apply_field<'a>(
    m: &mut LogMessage<'a>,
    key: &str,
    value: Cow<'a, str>,
) -> Result<(), Cow<'a, str>> {
    match key {
        "level" | "severity" => m.level = value.parse().map_err(|_| value)?,
        "facility" => m.facility = Some(value.parse().map_err(|_| value)?),
        "timestamp" => m.timestamp = parse_time(&value).ok_or(value)?,
        "source" => m.source = Some(value),
        "hostname" => m.hostname = Some(value),
        "procid" => m.procid = Some(value),
        "msgid" => m.msgid = Some(value),
        _ => return Err(value),
    }
    Ok(())
}

/// RFC 3339, or seconds since the epoch (fractions allowed).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let secs: f64 = s.parse().ok()?;
    if !secs.is_finite() {
        return None;
    }
    DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn original_client_shape() {
        let m = parse(
            br#"{"level":"INFO","message":"This is a test log","source":"MyService"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(m.level, Level::Info);
        assert_eq!(m.message, "This is a test log");
        assert_eq!(m.source.as_deref(), Some("MyService"));
        assert_eq!(m.timestamp, now());
        assert!(matches!(m.message, Cow::Borrowed(_)));
    }

    #[test]
    fn all_fields_and_extras() {
        let m = parse(
            br#"{"message":"a\nb","level":3,"timestamp":"2026-01-02T03:04:05.123456+01:00","facility":"local3","procid":42,"user":"bob","structured_data":{"x@1":{"k":["1","2"]}},"nested":{"ignored":1}}"#,
            now(),
        )
        .unwrap();
        assert_eq!(m.message, "a\nb");
        assert_eq!(m.level, Level::Err);
        assert_eq!(m.timestamp.to_rfc3339(), "2026-01-02T02:04:05.123456+00:00");
        assert_eq!(m.facility.unwrap().name(), "local3");
        assert_eq!(m.procid.as_deref(), Some("42"));
        assert_eq!(
            m.structured_data_json().unwrap(),
            r#"{"x@1":{"k":["1","2"]},"fields":{"user":"bob"}}"#
        );
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(matches!(
            parse(br#"{"level":"info"}"#, now()),
            Err(Error::NoMessage)
        ));
        assert!(parse(br#"{"message":"x"} trailing"#, now()).is_err());
        assert!(parse(b"[1,2]", now()).is_err());
        assert!(parse(b"{\"message\":\"unterminated", now()).is_err());
    }
}
