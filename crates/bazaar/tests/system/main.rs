//! System tests: the real fleet, started by the real launcher, observed from
//! outside through the gateway and `/proc`. One test binary, so the fleet's
//! binary is linked once.

mod api;
mod harness;
mod procfs;

mod availability;
mod browser;
mod catalog;
mod checkout;
mod cli;
mod fault;
mod fleet;
mod gateway;
mod identity;
mod inventory;
mod lifecycle;
mod notifications;
mod security;
mod storefront;
