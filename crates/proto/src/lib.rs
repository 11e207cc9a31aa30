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

/// Stock reservations, served by the inventory service.
pub mod inventory {
    /// Version 1 of the inventory contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.inventory.v1");
    }
}

/// Products as orders sees them, served by the catalog service.
pub mod catalog {
    /// Version 1 of the catalog contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.catalog.v1");
    }
}

/// A customer's cart as orders sees it, served by the cart service.
pub mod cart {
    /// Version 1 of the cart contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.cart.v1");
    }
}

/// Card payments for orders, served by the payments service.
pub mod payments {
    /// Version 1 of the payments contracts.
    pub mod v1 {
        #![allow(missing_docs, clippy::all)]
        tonic::include_proto!("bazaar.payments.v1");
    }
}
