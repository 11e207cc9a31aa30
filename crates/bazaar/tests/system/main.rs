//! System tests: the real fleet, started by the real launcher, observed from
//! outside through the gateway and `/proc`. One test binary, so the fleet's
//! binary is linked once.

mod harness;

mod cli;
mod fleet;
mod gateway;
mod identity;
mod lifecycle;
