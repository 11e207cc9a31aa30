//! System tests: the real fleet, started by the real launcher, observed from
//! outside through the gateway and `/proc`. One test binary, so the fleet's
//! binary is linked once.

mod harness;

mod catalog;
mod cli;
mod fleet;
mod gateway;
mod identity;
mod inventory;
mod lifecycle;
