//! The control API's generated types and gRPC stubs (`proto/control.proto`).

#![allow(clippy::all, missing_docs)]
tonic::include_proto!("shipd.control.v1");
