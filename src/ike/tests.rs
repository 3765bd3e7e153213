//! In-memory IKE tests: initiator and responder cores talking to each other.
