//! The filer's counters, rendered for Prometheus at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub requests_get: AtomicU64,
    pub requests_head: AtomicU64,
    pub requests_put: AtomicU64,
    pub requests_post: AtomicU64,
    pub requests_delete: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub files_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub files_read: AtomicU64,
    pub listings: AtomicU64,
    pub entries_deleted: AtomicU64,
    pub conflicts: AtomicU64,
    pub chunks_deleted: AtomicU64,
    pub chunk_delete_failures: AtomicU64,
}

impl Metrics {
    pub fn count_method(&self, method: &hyper::Method) {
        let counter = match *method {
            hyper::Method::GET => &self.requests_get,
            hyper::Method::HEAD => &self.requests_head,
            hyper::Method::PUT => &self.requests_put,
            hyper::Method::POST => &self.requests_post,
            hyper::Method::DELETE => &self.requests_delete,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_status(&self, status: u16) {
        match status {
            400..=499 => self.responses_4xx.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.responses_5xx.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// Prometheus text exposition.
    pub fn render(&self, store_kind: &str) -> String {
        let mut text = String::new();
        self.render_requests(&mut text);
        for (name, help, counter) in self.counters() {
            let _ = writeln!(text, "# HELP {name} {help}");
            let _ = writeln!(text, "# TYPE {name} counter");
            let _ = writeln!(text, "{name} {}", get(counter));
        }
        let _ = writeln!(text, "# TYPE kelp_filer_store_info gauge");
        let _ = writeln!(text, "kelp_filer_store_info{{store=\"{store_kind}\"}} 1");
        text
    }

    /// Requests by method and responses by status class.
    fn render_requests(&self, text: &mut String) {
        let _ = writeln!(text, "# TYPE kelp_filer_requests_total counter");
        for (method, counter) in [
            ("GET", &self.requests_get),
            ("HEAD", &self.requests_head),
            ("PUT", &self.requests_put),
            ("POST", &self.requests_post),
            ("DELETE", &self.requests_delete),
        ] {
            let _ = writeln!(
                text,
                "kelp_filer_requests_total{{method=\"{method}\"}} {}",
                get(counter)
            );
        }
        let _ = writeln!(text, "# TYPE kelp_filer_responses_total counter");
        let _ = writeln!(
            text,
            "kelp_filer_responses_total{{class=\"4xx\"}} {}",
            get(&self.responses_4xx)
        );
        let _ = writeln!(
            text,
            "kelp_filer_responses_total{{class=\"5xx\"}} {}",
            get(&self.responses_5xx)
        );
    }

    /// The plain counters: name, help, counter.
    fn counters(&self) -> [(&'static str, &'static str, &AtomicU64); 8] {
        [
            (
                "kelp_filer_files_written_total",
                "files created or replaced",
                &self.files_written,
            ),
            (
                "kelp_filer_bytes_written_total",
                "bytes of file data uploaded",
                &self.bytes_written,
            ),
            (
                "kelp_filer_files_read_total",
                "file reads served",
                &self.files_read,
            ),
            (
                "kelp_filer_listings_total",
                "directory pages listed",
                &self.listings,
            ),
            (
                "kelp_filer_entries_deleted_total",
                "entries deleted",
                &self.entries_deleted,
            ),
            (
                "kelp_filer_store_conflicts_total",
                "updates retried after a concurrent change",
                &self.conflicts,
            ),
            (
                "kelp_filer_chunks_deleted_total",
                "chunks deleted from volume servers",
                &self.chunks_deleted,
            ),
            (
                "kelp_filer_chunk_delete_failures_total",
                "chunk deletions left for a later round",
                &self.chunk_delete_failures,
            ),
        ]
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
