//! gRPC contracts of Bazaar: Rust types and tonic clients/servers generated
//! from the `.proto` files under `proto/`, one module per package.

/// Contracts served by the platform runtime in every service.
pub mod platform {
    /// Version 1 of the platform contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.platform.v1");
    }
}
