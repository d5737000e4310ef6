//! Log lines on stderr: `text` (colours only when stderr is a terminal, so that a log file or a
//! journal gets no escape sequences) or `json` (one object a line, for a log pipeline). The
//! level comes from `RUST_LOG` (default `info`).

use std::io::IsTerminal;

use crate::config_file::LogFormat;

/// Install the global subscriber.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // JSON has no colours; the span list and the current span say where a line came from.
        LogFormat::Json => builder.json().with_ansi(false).with_current_span(true).flatten_event(true).init(),
    }
}
