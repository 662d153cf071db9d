//! Logging and tracing setup: the one place subscribers are installed.
//!
//! Logs go to stderr through the log filter. With an OTLP endpoint, spans of the
//! [`raftmq_client::trace::TARGET`] target (a message's send, forward, Raft append, delivery) are
//! also exported over OTLP/gRPC in batches, whatever the log level, with `service.name` and the
//! node id on every span (resource attributes).

use std::io::IsTerminal;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where spans are exported.
#[derive(Debug, Clone)]
pub struct Export {
    /// OTLP/gRPC endpoint, `http://host:port`.
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// `service.instance.id`: the node id, or a client's name.
    pub instance: String,
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes the spans still buffered.
#[must_use = "dropping it without shutdown loses the last batch of spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter. The flush waits on the export, whose
    /// gRPC channel runs on this runtime: it blocks a thread of its own, never a worker.
    pub async fn shutdown(self) {
        let Some(p) = self.provider else { return };
        match tokio::task::spawn_blocking(move || p.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot flush the last spans"),
            Err(e) => tracing::warn!(error = %e, "span flush task failed"),
        }
    }
}

/// An OTLP tracer provider for `export`. Call inside a tokio runtime (the gRPC channel lives on it).
pub fn provider(export: &Export) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(export.endpoint.clone())
        .build()
        .map_err(|e| format!("OTLP exporter for {}: {e}", export.endpoint))?;
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", export.instance.clone()))
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The layer that turns the [`raftmq_client::trace::TARGET`] spans into OpenTelemetry spans of
/// `provider` (the nodes' exporter, or an application's or test's).
pub fn trace_layer<S>(provider: &SdkTracerProvider, scope: &'static str) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(scope))
        .with_filter(Targets::new().with_target(raftmq_client::trace::TARGET, Level::INFO))
}

/// Installs the global subscriber: logs filtered by `RUST_LOG` if set, else `level` (a `tracing`
/// filter); spans exported to `export` if given. Call inside a tokio runtime.
pub fn init(level: &str, export: Option<&Export>) -> Result<Telemetry, String> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(_) => EnvFilter::try_new(level).map_err(|e| format!("log level {level:?}: {e}"))?,
    };
    // The traced spans are for the exporter only: off in the log layer, so without an export
    // their callsites stay disabled and a send creates no span at all.
    let off = format!("{}=off", raftmq_client::trace::TARGET);
    let filter = filter.add_directive(off.parse().map_err(|e| format!("{off}: {e}"))?);
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let provider = export.map(provider).transpose()?;
    let otel = provider.as_ref().map(|p| trace_layer(p, "raftmq"));
    tracing_subscriber::registry().with(fmt).with(otel).try_init().map_err(|e| e.to_string())?;
    Ok(Telemetry { provider })
}
