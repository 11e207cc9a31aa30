//! One module per benchmark, each with its own command-line arguments
//! (`Args`), its run and its report.

pub mod catalog;
pub mod checkout;
pub mod faults;
pub mod fleet;
pub mod gateway;
pub mod storefront;
