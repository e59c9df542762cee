//! Prometheus text exposition of a registry.

use prometheus::{Registry, TextEncoder};

use crate::RuntimeError;

/// The registry's metrics in the text format, with the content type to serve
/// them under.
pub fn render_metrics(registry: &Registry) -> Result<(String, &'static str), RuntimeError> {
    let encoder = TextEncoder::new();
    let mut body = String::new();
    encoder.encode_utf8(&registry.gather(), &mut body)?;
    Ok((body, prometheus::TEXT_FORMAT))
}
