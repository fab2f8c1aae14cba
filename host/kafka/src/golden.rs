//! Golden frames: requests and responses captured from real clients, decoded and re-encoded.
