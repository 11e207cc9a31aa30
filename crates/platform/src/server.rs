//! (being written)
/// placeholder
pub struct Server;
/// placeholder
pub struct Context;
/// placeholder
pub struct Routes;
/// placeholder
pub trait Service {}
/// placeholder
pub fn serve() {}
