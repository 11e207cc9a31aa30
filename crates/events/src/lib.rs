//! The event contracts of Bazaar: the payloads services publish, as typed,
//! versioned [`bazaar_bus::Event`]s, one module per producing service.
//!
//! A consumer depends on this crate, never on the producer's: it is the
//! whole of what one service promises another about an event. These types
//! are wire types (the only ones here that derive `Serialize`); each service
//! converts its own domain types into them explicitly.
//!
//! A change that an old consumer cannot read is a new contract: bump the
//! type's `VERSION` (and, while both are published, add a new type) rather
//! than edit a field in place.

pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod money;
pub mod orders;
pub mod payments;
