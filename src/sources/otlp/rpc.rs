//! The error details OTLP answers carry: `google.rpc.Status` (the body of
//! an OTLP/HTTP error, and gRPC's `grpc-status-details-bin`) with a
//! `google.rpc.RetryInfo` when the client should retry after a delay.
//! OTLP clients retry RESOURCE_EXHAUSTED only when it carries RetryInfo, so
//! a busy receiver includes it and a request refused as too large does not.

use prost::Message;
use std::time::Duration;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// gRPC status codes used by the receiver.
pub const INVALID_ARGUMENT: i32 = 3;
pub const DEADLINE_EXCEEDED: i32 = 4;
pub const RESOURCE_EXHAUSTED: i32 = 8;
pub const UNAVAILABLE: i32 = 14;

/// The encoded status `code` with `message`, and a retry delay when given.
pub fn status(code: i32, message: String, retry_after: Option<Duration>) -> Vec<u8> {
    let details = retry_after
        .map(|after| ProtoAny {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: after.as_secs() as i64,
                    nanos: after.subsec_nanos() as i32,
                }),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    RpcStatus {
        code,
        message,
        details,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_delay_travels_as_retry_info() {
        let bytes = status(
            RESOURCE_EXHAUSTED,
            "busy".into(),
            Some(Duration::from_secs(2)),
        );
        let decoded = RpcStatus::decode(&bytes[..]).unwrap();
        assert_eq!((decoded.code, decoded.message.as_str()), (8, "busy"));
        let info = RetryInfo::decode(&decoded.details[0].value[..]).unwrap();
        assert_eq!(info.retry_delay.map(|d| d.seconds), Some(2));
        let plain = RpcStatus::decode(&status(3, "bad".into(), None)[..]).unwrap();
        assert!(plain.details.is_empty());
    }
}
