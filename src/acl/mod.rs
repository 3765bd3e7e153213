//! Per-endpoint access control lists and port maps (EVE's ACE model), compiled to
//! nftables objects in econet's own tables: one chain per endpoint and direction,
//! entered through verdict maps keyed by the endpoint (its addresses on routed
//! paths, its bridge port on switch networks), so a packet's cost does not grow
//! with the number of endpoints or ACEs on the device.

pub mod hosts;
