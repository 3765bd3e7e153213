//! Captured strongSwan messages, parsed and re-emitted.
