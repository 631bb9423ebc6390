//! Walks the protobuf encoding of an OTLP request field by field, without
//! decoding it whole: [`Fields`] yields each field of one message with its
//! payload borrowed from the request, so [`convert`](super::convert) can
//! decode one record at a time and [`census`] can count the records of a
//! request before anything is built. Never allocates; every length is
//! checked against the bytes that remain.

use prost::encoding::{decode_varint, WireType};

/// Bytes that are not the protobuf encoding of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated field")]
    Truncated,
    #[error("invalid field key")]
    InvalidKey,
    #[error("field {field} has wire type {found:?}, expected {expected:?}")]
    WrongType {
        field: u32,
        found: WireType,
        expected: WireType,
    },
    #[error("groups are not supported")]
    Group,
    #[error("values nested too deep")]
    TooDeep,
}

/// The payload of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// One field of a message: its number and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub payload: Payload<'a>,
}

impl<'a> Field<'a> {
    /// The payload of a length-delimited field (message, string, bytes,
    /// packed repeated).
    pub fn bytes(&self) -> Result<&'a [u8], WireError> {
        match self.payload {
            Payload::Bytes(b) => Ok(b),
            other => Err(self.wrong(other, WireType::LengthDelimited)),
        }
    }

    /// The payload of a varint field (enums, bools, integers).
    pub fn varint(&self) -> Result<u64, WireError> {
        match self.payload {
            Payload::Varint(v) => Ok(v),
            other => Err(self.wrong(other, WireType::Varint)),
        }
    }

    fn wrong(&self, found: Payload<'_>, expected: WireType) -> WireError {
        WireError::WrongType {
            field: self.number,
            found: match found {
                Payload::Varint(_) => WireType::Varint,
                Payload::Fixed64(_) => WireType::SixtyFourBit,
                Payload::Fixed32(_) => WireType::ThirtyTwoBit,
                Payload::Bytes(_) => WireType::LengthDelimited,
            },
            expected,
        }
    }
}

/// The fields of one encoded message, in wire order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Fields { rest: message }
    }

    fn next_field(&mut self) -> Result<Field<'a>, WireError> {
        let key = decode_varint(&mut self.rest).map_err(|_| WireError::Truncated)?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::InvalidKey)?;
        if number == 0 {
            return Err(WireError::InvalidKey);
        }
        let payload = match key & 7 {
            0 => Payload::Varint(decode_varint(&mut self.rest).map_err(|_| WireError::Truncated)?),
            1 => Payload::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = decode_varint(&mut self.rest).map_err(|_| WireError::Truncated)?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Payload::Bytes(self.take(len)?)
            }
            5 => Payload::Fixed32(u32::from_le_bytes(self.take_array()?)),
            3 | 4 => return Err(WireError::Group),
            _ => return Err(WireError::InvalidKey),
        };
        Ok(Field { number, payload })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The payloads of the length-delimited field `number` (a repeated or
    /// embedded message), in order; other fields are skipped.
    pub fn messages(self, number: u32) -> impl Iterator<Item = Result<&'a [u8], WireError>> {
        self.filter_map(move |field| payload_of(field, |n| n == number))
    }

    /// Like [`messages`](Self::messages), for any of the fields `numbers`
    /// (the cases of a `oneof`).
    pub fn messages_of(
        self,
        numbers: &'static [u32],
    ) -> impl Iterator<Item = Result<&'a [u8], WireError>> {
        self.filter_map(move |field| payload_of(field, |n| numbers.contains(&n)))
    }
}

/// The payload of `field` when its number is `wanted`; errors pass.
fn payload_of<'a>(
    field: Result<Field<'a>, WireError>,
    wanted: impl Fn(u32) -> bool,
) -> Option<Result<&'a [u8], WireError>> {
    match field {
        Ok(f) if wanted(f.number) => Some(f.bytes()),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<Field<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            // One error ends the walk.
            self.rest = &[];
        }
        Some(field)
    }
}

/// How many items a request holds at the level that becomes events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Log records or metric data points.
    pub items: u64,
    /// `ResourceLogs` / `ResourceMetrics`.
    pub resources: u64,
}

/// The nesting of log records in an `ExportLogsServiceRequest`:
/// resource_logs, scope_logs, log_records.
pub const LOG_RECORDS: &[&[u32]] = &[&[1], &[2], &[2]];

/// The nesting of metric data points in an `ExportMetricsServiceRequest`:
/// resource_metrics, scope_metrics, metrics, one of gauge / sum /
/// histogram / exponential_histogram / summary, data_points.
pub const DATA_POINTS: &[&[u32]] = &[&[1], &[2], &[2], &[5, 7, 9, 10, 11], &[1]];

/// Counts the items of a request whose items sit at `path`: at each level
/// the field numbers of the nested messages, from the request down to the
/// items ([`LOG_RECORDS`], [`DATA_POINTS`]). Visits every message on the
/// way, so malformed nesting is found before anything is decoded.
pub fn census(request: &[u8], path: &[&'static [u32]]) -> Result<Census, WireError> {
    let mut census = Census::default();
    count(request, path, 0, &mut census)?;
    Ok(census)
}

fn count(
    message: &[u8],
    path: &[&'static [u32]],
    depth: usize,
    census: &mut Census,
) -> Result<(), WireError> {
    let Some((&numbers, deeper)) = path.split_first() else {
        return Ok(());
    };
    for inner in Fields::new(message).messages_of(numbers) {
        let inner = inner?;
        match depth {
            0 => census.resources += 1,
            _ if deeper.is_empty() => census.items += 1,
            _ => {}
        }
        count(inner, deeper, depth + 1, census)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    fn request(resources: usize, scopes: usize, records: usize) -> Vec<u8> {
        ExportLogsServiceRequest {
            resource_logs: vec![
                ResourceLogs {
                    scope_logs: vec![
                        ScopeLogs {
                            log_records: vec![
                                LogRecord {
                                    severity_number: 9,
                                    ..Default::default()
                                };
                                records
                            ],
                            ..Default::default()
                        };
                        scopes
                    ],
                    schema_url: "s".into(),
                    ..Default::default()
                };
                resources
            ],
        }
        .encode_to_vec()
    }

    #[test]
    fn census_counts_records_and_resources() {
        let census = census(&request(3, 2, 5), LOG_RECORDS).unwrap();
        assert_eq!(
            census,
            Census {
                items: 30,
                resources: 3
            }
        );
        assert_eq!(census_of_empty(), Census::default());
    }

    fn census_of_empty() -> Census {
        census(&[], LOG_RECORDS).unwrap()
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_request_never_a_panic() {
        let wire = request(2, 1, 3);
        for cut in 0..wire.len() {
            let _ = census(&wire[..cut], LOG_RECORDS);
        }
        assert_eq!(
            census(&wire[..wire.len() - 1], LOG_RECORDS),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn fields_read_every_wire_type_and_refuse_groups() {
        // field 1 varint 150, field 2 fixed64, field 3 bytes "ab", field 4 fixed32
        let mut wire = vec![0x08, 0x96, 0x01, 0x11];
        wire.extend_from_slice(&7u64.to_le_bytes());
        wire.extend_from_slice(&[0x1a, 2, b'a', b'b', 0x25]);
        wire.extend_from_slice(&9u32.to_le_bytes());
        let fields: Vec<Field<'_>> = Fields::new(&wire).map(Result::unwrap).collect();
        assert_eq!(fields[0].varint(), Ok(150));
        assert_eq!(fields[1].payload, Payload::Fixed64(7));
        assert_eq!(fields[2].bytes(), Ok(&b"ab"[..]));
        assert_eq!(fields[3].payload, Payload::Fixed32(9));
        assert!(fields[0].bytes().is_err());
        assert_eq!(
            Fields::new(&[0x0b]).next(),
            Some(Err(WireError::Group)),
            "start group"
        );
        assert_eq!(
            Fields::new(&[0x00]).next(),
            Some(Err(WireError::InvalidKey))
        );
    }
}
