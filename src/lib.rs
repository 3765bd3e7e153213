//! econet: the networks of edge containers (ECOs), in one small static binary.
//!
//! The control path: [`config`] (model, validation) → [`reconcile`] (desired vs
//! current state → an ordered plan) → [`netlink`] (rtnetlink and nftables). The data
//! path: [`wire`] formats under sans-I/O protocol cores. [`event_loop`] is the only
//! place that blocks.

pub mod acl;
pub mod addr;
pub mod board;
pub mod cli;
pub mod config;
pub mod control;
pub mod controller;
pub mod daemon;
pub mod demo;
pub mod dns;
pub mod event_loop;
pub mod firewall;
pub mod map_server;
pub mod netlink;
pub mod persist;
pub mod reconcile;
pub mod services;
pub mod status;
pub mod wire;

// Protocol cores, each sans-I/O over `wire`.
pub mod dhcp;
pub mod dhcp6;
pub mod esp;
pub mod ike;
pub mod lisp;
pub mod ra;

// Seed corpora for fuzz/, made from the captures the unit tests hold (see that file).
#[cfg(test)]
#[path = "../fuzz/seeds.rs"]
mod fuzz_seeds;
