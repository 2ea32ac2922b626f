//! Prometheus metrics of the api, on a registry of its own (so two servers in one test process
//! never share counters). Labels are bounded: route templates, methods, statuses, outcomes.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use std::time::Instant;

/// What became of a report sent to `POST /api/v1/bugs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    Accepted,
    Invalid,
    RateLimited,
    Blocked,
    OverCap,
}

impl ReportOutcome {
    const ALL: [ReportOutcome; 5] = [
        ReportOutcome::Accepted,
        ReportOutcome::Invalid,
        ReportOutcome::RateLimited,
        ReportOutcome::Blocked,
        ReportOutcome::OverCap,
    ];

    fn label(self) -> &'static str {
        match self {
            ReportOutcome::Accepted => "accepted",
            ReportOutcome::Invalid => "invalid",
            ReportOutcome::RateLimited => "rate_limited",
            ReportOutcome::Blocked => "blocked",
            ReportOutcome::OverCap => "over_cap",
        }
    }
}

/// What became of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentOutcome {
    /// An upload URL was handed out.
    Requested,
    Uploaded,
    Rejected,
}

impl AttachmentOutcome {
    const ALL: [AttachmentOutcome; 3] = [
        AttachmentOutcome::Requested,
        AttachmentOutcome::Uploaded,
        AttachmentOutcome::Rejected,
    ];

    fn label(self) -> &'static str {
        match self {
            AttachmentOutcome::Requested => "requested",
            AttachmentOutcome::Uploaded => "uploaded",
            AttachmentOutcome::Rejected => "rejected",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    reports: IntCounterVec,
    attachments: IntCounterVec,
    objects_deleted: IntCounter,
    streams_open: IntGauge,
    stream_events_sent: IntCounter,
    stream_events_dropped: IntCounter,
    stream_resumes: IntCounter,
    stream_resets: IntCounter,
    streams_expired: IntCounterVec,
    team_subscriptions: IntGauge,
    outbox_backlog: IntGauge,
    publish_latency: prometheus::Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric definition");
        let reports = IntCounterVec::new(
            Opts::new(
                "bichito_reports_total",
                "Reports sent to the ingest API, by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric definition");
        for outcome in ReportOutcome::ALL {
            reports.with_label_values(&[outcome.label()]);
        }
        let attachments = IntCounterVec::new(
            Opts::new(
                "bichito_attachments_total",
                "Attachments by outcome: upload URLs handed out, uploads verified, uploads refused.",
            ),
            &["outcome"],
        )
        .expect("valid metric definition");
        for outcome in AttachmentOutcome::ALL {
            attachments.with_label_values(&[outcome.label()]);
        }
        let gauge =
            |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric definition");
        let counter =
            |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric definition");
        let objects_deleted = counter(
            "bichito_attachment_objects_deleted_total",
            "Storage objects deleted by the attachment sweeper.",
        );
        let streams_open = gauge(
            "bichito_sse_connections",
            "Team streams open in this process.",
        );
        let stream_events_sent = counter(
            "bichito_sse_events_sent_total",
            "Events written to team streams.",
        );
        let stream_events_dropped = counter(
            "bichito_sse_events_dropped_total",
            "Events a slow stream subscriber lost (announced with stream.gap).",
        );
        let stream_resumes = counter(
            "bichito_sse_resumes_total",
            "Streams resumed from a Last-Event-ID within the window.",
        );
        let stream_resets = counter(
            "bichito_sse_resets_total",
            "Streams told to refetch (stream.reset).",
        );
        let streams_expired = IntCounterVec::new(
            Opts::new(
                "bichito_sse_expired_total",
                "Streams ended because their authorization did (stream.expired), by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        let team_subscriptions = gauge(
            "bichito_bus_team_subscriptions",
            "Teams this process subscribes to on the bus (on NATS, all read through one consumer).",
        );
        let outbox_backlog = gauge(
            "bichito_outbox_backlog",
            "Outbox events not yet published (sampled every second).",
        );
        let publish_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "bichito_outbox_publish_seconds",
                "From a change's commit to its event's publication on the bus.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )
        .expect("valid metric definition");
        let collectors: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(reports.clone()),
            Box::new(attachments.clone()),
            Box::new(objects_deleted.clone()),
            Box::new(streams_open.clone()),
            Box::new(stream_events_sent.clone()),
            Box::new(stream_events_dropped.clone()),
            Box::new(stream_resumes.clone()),
            Box::new(stream_resets.clone()),
            Box::new(streams_expired.clone()),
            Box::new(team_subscriptions.clone()),
            Box::new(outbox_backlog.clone()),
            Box::new(publish_latency.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            reports,
            attachments,
            objects_deleted,
            streams_open,
            stream_events_sent,
            stream_events_dropped,
            stream_resumes,
            stream_resets,
            streams_expired,
            team_subscriptions,
            outbox_backlog,
            publish_latency,
        }
    }

    pub fn report(&self, outcome: ReportOutcome) {
        self.reports.with_label_values(&[outcome.label()]).inc();
    }

    pub fn report_count(&self, outcome: ReportOutcome) -> u64 {
        self.reports.with_label_values(&[outcome.label()]).get()
    }

    pub fn attachment(&self, outcome: AttachmentOutcome) {
        self.attachments.with_label_values(&[outcome.label()]).inc();
    }

    pub fn objects_deleted(&self, count: usize) {
        self.objects_deleted.inc_by(count as u64);
    }

    pub fn stream_opened(&self, subscribed_teams: usize) {
        self.streams_open.inc();
        self.team_subscriptions
            .set(i64::try_from(subscribed_teams).unwrap_or(i64::MAX));
    }

    pub fn stream_closed(&self, subscribed_teams: usize) {
        self.streams_open.dec();
        self.team_subscriptions
            .set(i64::try_from(subscribed_teams).unwrap_or(i64::MAX));
    }

    pub fn set_outbox_backlog(&self, backlog: i64) {
        self.outbox_backlog.set(backlog);
    }

    pub fn observe_publish(&self, seconds: f64) {
        self.publish_latency.observe(seconds);
    }

    pub fn stream_event_sent(&self) {
        self.stream_events_sent.inc();
    }

    pub fn stream_events_dropped(&self, count: u64) {
        self.stream_events_dropped.inc_by(count);
    }

    pub fn stream_resumed(&self) {
        self.stream_resumes.inc();
    }

    pub fn stream_reset(&self) {
        self.stream_resets.inc();
    }

    pub fn stream_expired(&self, reason: &str) {
        self.streams_expired.with_label_values(&[reason]).inc();
    }

    /// Counts an answered request and writes its access log line.
    pub fn request_done(
        &self,
        method: &str,
        route: &str,
        path: &str,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        self.observe_request(method, route, status, elapsed.as_secs_f64());
        tracing::info!(
            target: "bichito::access",
            method,
            route,
            path,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        bichito_core::telemetry::encode_metrics(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts and times every routed request, and writes the access log line: method, route
/// template, path and status only. Never the query string (it may carry a token) nor headers.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    metrics.request_done(
        &method,
        &route,
        &path,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
