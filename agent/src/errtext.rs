//! Errors as one line of text: an error and its sources, for logs and reports. A leaf module, so any stage
//! may use it without depending on another.

/// An error and its sources, `: `-separated (a connection error's cause is in its sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
