//! Logs, traces and W3C trace context.
//!
//! Logs go through `tracing`: human-readable on a terminal, JSON otherwise,
//! with the trace id on every line written inside a request. Spans are
//! OpenTelemetry spans (via `tracing-opentelemetry`), exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. `traceparent` is read from incoming
//! HTTP and gRPC requests and written onto outgoing ones.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes the current span's trace context as `traceparent` (and
/// `tracestate`) onto outgoing HTTP headers or gRPC metadata.
pub fn inject_http(headers: &mut HeaderMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Like [`inject_http`], for a tonic request's metadata.
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    let mut headers = HeaderMap::new();
    inject_http(&mut headers);
    for (name, value) in &headers {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(name.as_str().as_bytes()),
            value.to_str().map(tonic::metadata::MetadataValue::try_from),
        ) && let Ok(value) = value
        {
            metadata.insert(key, value);
        }
    }
}

/// Reads the remote parent context from incoming headers (`traceparent`).
pub fn extract_http(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Keeps span export running; flushes pending spans when dropped.
#[must_use = "dropping the guard stops span export"]
pub struct Guard {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("telemetry::Guard")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the process-wide subscriber: the log filter, the log format
/// (pretty on a terminal, JSON otherwise) and OpenTelemetry spans, exported
/// over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
///
/// A second call in the same process (tests start many services) keeps the
/// first subscriber.
pub fn init(config: &crate::Config) -> anyhow::Result<Guard> {
    use opentelemetry::trace::TracerProvider as _;
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            config.instance.clone(),
        ))
        .build();
    let mut builder =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer("bazaar");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_new(&config.log_filter)?;
    let terminal = std::io::stdout().is_terminal();
    let json = match config.log_format {
        crate::config::LogFormat::Json => true,
        crate::config::LogFormat::Pretty => false,
        crate::config::LogFormat::Auto => !terminal,
    };
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_ansi(terminal).boxed()
    };
    // Spans reach OpenTelemetry at info and above whatever the log filter
    // says, so trace context flows even when logs are quiet.
    let _ = tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(fmt.with_filter(filter))
        .try_init();
    Ok(Guard { provider })
}

/// For tests: installs telemetry once per test binary; logs are shown only
/// when `TEST_LOG` is set, but trace context works either way.
pub fn init_for_tests() {
    static GUARD: std::sync::OnceLock<Option<Guard>> = std::sync::OnceLock::new();
    GUARD.get_or_init(|| {
        let mut config = crate::Config::for_test("test", std::env::temp_dir());
        config.log_filter = if std::env::var_os("TEST_LOG").is_some() {
            "debug,h2=info,hyper=info,tower=info".into()
        } else {
            "off".into()
        };
        init(&config).ok()
    });
}

/// The trace id of `span` as 32 hex digits (all zeros without a context).
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

/// The W3C `traceparent` naming `span`, if it has a valid trace context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
