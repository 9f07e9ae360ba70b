//! Log output: pretty lines for humans, or JSON lines (`LOG_FORMAT=json`) that carry this
//! instance's id on every line, so logs of several instances can be merged and filtered.

use crate::config::LogFormat;
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format with `"instanceId"` added as the first field.
struct JsonWithInstance {
    inner: Format<Json>,
    instance: String,
}

impl<S, N> FormatEvent<S, N> for JsonWithInstance
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"instanceId\":{},{rest}", self.instance),
            None => writer.write_str(&line),
        }
    }
}

/// Installs the global subscriber (`RUST_LOG` filter, `info` by default).
pub fn init(format: LogFormat, instance_id: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match format {
        LogFormat::Pretty => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => {
            let instance = serde_json::to_string(instance_id).unwrap_or_else(|_| "\"?\"".into());
            let inner = tracing_subscriber::fmt::format().json();
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .fmt_fields(JsonFields::new())
                .event_format(JsonWithInstance { inner, instance })
                .init()
        }
    }
}
