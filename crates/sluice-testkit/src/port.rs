//! Free loopback ports for servers that must be told their port up front.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// A port that was free a moment ago. Another process could take it before the
/// server binds it; callers that can tell a bind failure retry with a new port.
pub(crate) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
