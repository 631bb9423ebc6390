//! What an encoded OTLP item (a log record, a data point, a resource)
//! takes in memory once decoded and converted, at least: every nested
//! attribute, array element, exemplar and bucket counted at the size of
//! the structures it becomes, every string and byte string at its length.
//! The protobuf encoding of an empty attribute is 2 bytes; decoded it is
//! a 64-byte `KeyValue` and then a 64-byte attribute entry, so the bytes
//! of an item alone say little about its cost. Reads only; never decodes.

use super::wire::{Fields, Payload, WireError};
use crate::event::{Str, Value};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{exemplar, Exemplar};
use std::mem::size_of;

/// The most one encoded byte becomes while its item is decoded and
/// converted (an empty attribute: 2 bytes, 128 decoded and converted, and
/// the decoder's vectors grow by doubling). An item of `n` bytes never
/// takes more than `n * MAX_EXPANSION`, so small items need no measuring.
pub const MAX_EXPANSION: usize = 128;

/// Deepest nesting of values measured, as prost's recursion limit.
const MAX_DEPTH: usize = 100;

/// The kinds of encoded message that can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LogRecord,
    NumberPoint,
    HistogramPoint,
    ExponentialPoint,
    SummaryPoint,
    Resource,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    Exemplar,
    Buckets,
    Quantile,
}

/// Bytes a decoded attribute takes: the decoder's `KeyValue` and the
/// event's entry.
const ATTRIBUTE: usize = size_of::<KeyValue>() + size_of::<(Str, Value)>();
/// Bytes a decoded array element takes.
const ELEMENT: usize = size_of::<AnyValue>() + size_of::<Value>();
/// Bytes a decoded exemplar takes (exemplars are decoded, then dropped).
const EXEMPLAR: usize = size_of::<Exemplar>() + size_of::<exemplar::Value>();
/// Bytes a decoded exponential-histogram bucket takes: its count, then a
/// bound and a count in the event.
const BUCKET: usize = 3 * size_of::<u64>();
/// Bytes a decoded quantile takes: decoded, then as a pair in the event.
const QUANTILE: usize = 2 * 2 * size_of::<f64>();

/// At least what `message`, encoded as `kind`, takes once decoded and
/// converted.
pub fn least(message: &[u8], kind: Kind) -> Result<usize, WireError> {
    measure(message, kind, 0)
}

fn measure(message: &[u8], kind: Kind, depth: usize) -> Result<usize, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let mut total = 0usize;
    for field in Fields::new(message) {
        let field = field?;
        let nested = |inner: Kind, each: usize| -> Result<usize, WireError> {
            Ok(each.saturating_add(measure(field.bytes()?, inner, depth + 1)?))
        };
        let cost = match (kind, field.number) {
            (Kind::LogRecord, 5) => nested(Kind::AnyValue, 0)?,
            (Kind::LogRecord, 6)
            | (Kind::NumberPoint, 7)
            | (Kind::HistogramPoint, 9)
            | (Kind::ExponentialPoint, 1)
            | (Kind::SummaryPoint, 7)
            | (Kind::Resource, 1)
            | (Kind::KeyValueList, 1)
            | (Kind::Exemplar, 7) => nested(Kind::KeyValue, ATTRIBUTE)?,
            (Kind::KeyValue, 2) => nested(Kind::AnyValue, 0)?,
            (Kind::AnyValue, 5) => nested(Kind::ArrayValue, 0)?,
            (Kind::AnyValue, 6) => nested(Kind::KeyValueList, 0)?,
            (Kind::ArrayValue, 1) => nested(Kind::AnyValue, ELEMENT)?,
            (Kind::NumberPoint, 5) | (Kind::HistogramPoint, 8) | (Kind::ExponentialPoint, 11) => {
                nested(Kind::Exemplar, EXEMPLAR)?
            }
            (Kind::ExponentialPoint, 8 | 9) => nested(Kind::Buckets, 0)?,
            (Kind::SummaryPoint, 6) => nested(Kind::Quantile, QUANTILE)?,
            (Kind::Buckets, 2) => match field.payload {
                // Packed varints: one per byte with the high bit clear.
                Payload::Bytes(b) => b.iter().filter(|&&x| x < 0x80).count() * BUCKET,
                _ => BUCKET,
            },
            (_, _) => match field.payload {
                Payload::Bytes(b) => b.len(),
                _ => 0,
            },
        };
        total = total.saturating_add(cost);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::metrics::v1::{
        exponential_histogram_data_point::Buckets, ExponentialHistogramDataPoint,
    };
    use prost::Message;

    #[test]
    fn empty_attributes_and_elements_count_at_their_decoded_size() {
        let empty_kv = KeyValue::default();
        let record = LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue::default(); 1000],
                })),
            }),
            attributes: vec![
                KeyValue {
                    key: "m".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: vec![empty_kv.clone(); 10],
                        })),
                    }),
                    ..Default::default()
                };
                100
            ],
            ..Default::default()
        }
        .encode_to_vec();
        let least = least(&record, Kind::LogRecord).unwrap();
        let want = 1000 * ELEMENT + 100 * (ATTRIBUTE + 1 + 10 * ATTRIBUTE);
        assert_eq!(least, want);
        assert!(
            least <= record.len() * MAX_EXPANSION,
            "{least} within {} x {MAX_EXPANSION}",
            record.len()
        );
    }

    #[test]
    fn exponential_buckets_count_one_per_packed_varint() {
        let point = ExponentialHistogramDataPoint {
            positive: Some(Buckets {
                offset: 0,
                bucket_counts: vec![0, 1, 300, 70_000],
            }),
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(least(&point, Kind::ExponentialPoint).unwrap(), 4 * BUCKET);
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let mut value = AnyValue::default();
        for _ in 0..200 {
            value = AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![value],
                })),
            };
        }
        let bytes = value.encode_to_vec();
        assert_eq!(least(&bytes, Kind::AnyValue), Err(WireError::TooDeep));
    }
}
