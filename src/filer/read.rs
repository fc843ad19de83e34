//! GET and HEAD: a file's data (ranges, conditional GETs, extended attributes as headers),
//! a directory's listing (JSON with `Accept: application/json`, else HTML), an entry as
//! JSON (`?metadata=true`), or a file's FastDFS metadata (`?op=meta`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::Response;
use hyper::header::HeaderValue;

use super::Filer;
use super::data;
use super::entry::{Entry, seaweed_entry};
use super::error::{FilerError, FilerResult};
use super::http::{Call, HttpResponse, empty, full, header, json, respond};
use super::listing::{self, ListRequest};
use super::path;
use crate::volume::conditional::{http_date, not_modified};
use crate::volume::range::{RangeDecision, content_range, decide};

pub async fn get(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let target = &call.target.path;
    let Some(found) = filer.namespace.find(target).await? else {
        return Err(FilerError::not_found(target));
    };
    let pretty = call.params.has("pretty");
    if call.params.flag("metadata") {
        let entry = seaweed_entry(target, &found.entry);
        let body = if pretty {
            serde_json::to_vec_pretty(&entry)
        } else {
            serde_json::to_vec(&entry)
        };
        let body = Bytes::from(body.expect("entries serialize"));
        return Ok(respond(200, "application/json", body));
    }
    if call.params.get("op") == Some("meta") {
        let meta = serde_json::to_value(&found.entry.meta).expect("a map serializes");
        return Ok(json(200, &meta, pretty));
    }
    if found.entry.is_directory() {
        return list(filer, &call, pretty).await;
    }
    serve_file(filer, &call, &found.entry).await
}

async fn list(filer: &Arc<Filer>, call: &Call, pretty: bool) -> FilerResult<HttpResponse> {
    if call.method == hyper::Method::HEAD {
        return Ok(empty(200));
    }
    let request = ListRequest {
        dir: call.target.path.clone(),
        last_file_name: call.params.get("lastFileName").unwrap_or("").to_string(),
        limit: ListRequest::limit_from(call.params.get("limit"))?,
        pattern: call.params.value("namePattern").map(str::to_string),
        exclude: call.params.value("namePatternExclude").map(str::to_string),
    };
    let page = listing::read_page(&filer.namespace, &request).await?;
    filer.metrics.listings.fetch_add(1, Ordering::Relaxed);
    let wants_json =
        header(&call.headers, "accept").is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let body = Bytes::from(listing::json_bytes(&page, pretty));
        Ok(respond(200, "application/json", body))
    } else {
        let html = listing::html(&page);
        Ok(respond(200, "text/html; charset=utf-8", Bytes::from(html)))
    }
}

/// The Content-Type of a file: as uploaded, else from its name's extension.
fn content_type(name: &str, entry: &Entry) -> String {
    if !entry.mime.is_empty() {
        return entry.mime.clone();
    }
    crate::volume::codec::mime_for_extension(crate::volume::fid::extension_of(name))
}

/// Headers every answer about a file carries (200, 206, 304, 416).
fn file_headers(
    builder: hyper::http::response::Builder,
    name: &str,
    entry: &Entry,
) -> hyper::http::response::Builder {
    let mut builder = builder
        .header("accept-ranges", "bytes")
        .header("etag", entry.etag())
        .header(
            "last-modified",
            http_date((entry.mtime_ns / 1_000_000_000).max(0) as u64),
        );
    let mut exposed = Vec::new();
    for (key, value) in &entry.extended {
        if let Ok(value) = HeaderValue::from_str(value) {
            builder = builder.header(key.as_str(), value);
            exposed.push(key.as_str());
        }
    }
    exposed.push("Content-Disposition");
    let disposition = format!("inline; filename=\"{}\"", name.replace('"', "\\\""));
    if let Ok(disposition) = HeaderValue::from_str(&disposition) {
        builder = builder.header("content-disposition", disposition);
    }
    builder.header("access-control-expose-headers", exposed.join(","))
}

async fn serve_file(filer: &Arc<Filer>, call: &Call, entry: &Entry) -> FilerResult<HttpResponse> {
    let name = path::name_of(&call.target.path);
    let etag = entry.etag();
    let modified_s = (entry.mtime_ns / 1_000_000_000).max(0) as u64;
    let fresh = not_modified(
        header(&call.headers, "if-none-match"),
        header(&call.headers, "if-modified-since"),
        etag.trim_matches('"'),
        modified_s,
    );
    if fresh {
        let builder = Response::builder()
            .status(304)
            .header("etag", etag)
            .header("last-modified", http_date(modified_s));
        return Ok(builder.body(full(Bytes::new())).expect("valid response"));
    }
    let size = entry.file_size;
    let builder = file_headers(Response::builder(), name, entry)
        .header("content-type", content_type(name, entry));
    let (status, start, len, builder) = match decide(header(&call.headers, "range"), size) {
        RangeDecision::Full => (200, 0, size, builder),
        RangeDecision::Partial { start, len } => (
            206,
            start,
            len,
            builder.header("content-range", content_range(start, len, size)),
        ),
        RangeDecision::Unsatisfiable => {
            let builder = builder
                .status(416)
                .header("content-range", format!("bytes */{size}"));
            let body = full(Bytes::from_static(
                b"{\"error\":\"invalid range: failed to overlap\"}",
            ));
            return Ok(builder.body(body).expect("valid response"));
        }
    };
    let builder = builder.status(status).header("content-length", len);
    if call.method == hyper::Method::HEAD {
        return Ok(builder.body(full(Bytes::new())).expect("valid response"));
    }
    let body = data::read_body(&filer.volumes, entry, start, len).await?;
    filer.metrics.files_read.fetch_add(1, Ordering::Relaxed);
    Ok(builder.body(body).expect("valid response"))
}
