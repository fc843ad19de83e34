//! PUT, POST and DELETE: uploads (multipart or raw body, chunked), directories, appends and
//! truncation, renames and copies, extended attributes (`?tagging`), FastDFS metadata
//! (`?op=meta`), and deletes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::Filer;
use super::data::Uploaded;
use super::entry::Entry;
use super::error::{FilerError, FilerResult};
use super::fids;
use super::http::{Call, HttpResponse, empty, header, json};
use super::limits::{
    EXTENDED_BYTES_MAX, META_KEY_BYTES_MAX, META_PAIRS_MAX, META_VALUE_BYTES_MAX,
    MULTIPART_BODY_BYTES_MAX,
};
use super::namespace::{Found, now_ns};
use super::path;
use super::tree;
use super::volumes::Placement;
use crate::volume::multipart;

pub async fn put(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let target = call.target.path.clone();
    if target == "/" && !call.params.has("mv.from") && !call.params.has("cp.from") {
        return Err(FilerError::bad_request(
            "the root is a directory: name a file under it",
        ));
    }
    if call.params.has("tagging") && call.method == hyper::Method::PUT {
        let tags = seaweed_headers(&call.headers)?;
        tree::set_tags(&filer.namespace, &target, tags).await?;
        return Ok(empty(202));
    }
    if let Some(from) = call.params.value("mv.from") {
        let from =
            path::clean(from).map_err(|e| FilerError::bad_request(format!("mv.from: {e}")))?;
        tree::rename(&filer.namespace, &from.path, &call.target).await?;
        return Ok(empty(204));
    }
    if let Some(from) = call.params.value("cp.from") {
        let from =
            path::clean(from).map_err(|e| FilerError::bad_request(format!("cp.from: {e}")))?;
        tree::copy(filer, &from.path, &call.target).await?;
        let mut response = empty(204);
        response.headers_mut().insert(
            "x-seaweedfs-copy-committed",
            hyper::header::HeaderValue::from_static("true"),
        );
        return Ok(response);
    }
    match call.params.get("op") {
        Some("append") => return append(filer, call).await,
        Some("truncate") => return truncate(filer, &call).await,
        Some("meta") => return set_meta(filer, call).await,
        Some("") | None => {}
        Some(other) => {
            return Err(FilerError::bad_request(format!(
                "op={other:?} is not one of append, truncate, meta"
            )));
        }
    }
    upload(filer, call).await
}

/// `Seaweed-*` request headers, names in Go's canonical form (as SeaweedFS keeps them).
fn seaweed_headers(headers: &hyper::HeaderMap) -> FilerResult<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    let mut bytes = 0;
    for (name, value) in headers {
        if !name.as_str().starts_with("seaweed-") {
            continue;
        }
        let value = value
            .to_str()
            .map_err(|_| FilerError::bad_request(format!("header {name} is not text")))?;
        bytes += name.as_str().len() + value.len();
        if bytes > EXTENDED_BYTES_MAX {
            return Err(FilerError::bad_request(format!(
                "Seaweed-* headers take over {EXTENDED_BYTES_MAX} bytes"
            )));
        }
        found.insert(canonical_header(name.as_str()), value.to_string());
    }
    Ok(found)
}

/// `seaweed-size-class` -> `Seaweed-Size-Class`.
pub fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let mapped = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            mapped
        })
        .collect()
}

/// Where this request's chunks go: `collection`, `replication`, `ttl` from the query over
/// the filer's defaults. Returns the TTL in seconds too.
fn placement(filer: &Filer, call: &Call) -> FilerResult<(Placement, u32)> {
    let ttl_text = call.params.value("ttl").unwrap_or("").to_string();
    let ttl_sec = if ttl_text.is_empty() {
        0
    } else {
        fids::ttl_seconds(&ttl_text).map_err(FilerError::bad_request)?
    };
    let placement = Placement {
        collection: call
            .params
            .value("collection")
            .unwrap_or(&filer.placement.collection)
            .to_string(),
        replication: call
            .params
            .value("replication")
            .unwrap_or(&filer.placement.replication)
            .to_string(),
        ttl: ttl_text,
    };
    Ok((placement, ttl_sec))
}

fn is_multipart(call: &Call) -> bool {
    header(&call.headers, "content-type").is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    })
}

/// A multipart body's file part (the whole body is read, up to a bound).
async fn read_part(call: Call) -> FilerResult<multipart::FilePart> {
    let content_type = header(&call.headers, "content-type")
        .unwrap_or("")
        .to_string();
    let boundary = multipart::boundary_of(&content_type)
        .ok_or_else(|| FilerError::bad_request("multipart body without a boundary"))?
        .map_err(|e| FilerError::bad_request(e.to_string()))?;
    let body = Limited::new(call.body, MULTIPART_BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| {
            FilerError::new(
                413,
                format!("multipart body unreadable or over {MULTIPART_BODY_BYTES_MAX} bytes: {e}"),
            )
        })?
        .to_bytes();
    multipart::parse_file_part(&body, &boundary).map_err(|e| FilerError::bad_request(e.to_string()))
}

/// Is the request body empty (no Content-Length or 0, and not chunked)?
fn body_is_empty(call: &Call) -> bool {
    let length = header(&call.headers, "content-length").and_then(|l| l.trim().parse::<u64>().ok());
    let chunked = header(&call.headers, "transfer-encoding").is_some_and(|t| t.contains("chunked"));
    !chunked && length.unwrap_or(0) == 0
}

/// A new file: data uploaded, then the entry committed (replacing a file there; a
/// directory there is an error). Chunks of a failed commit are queued for deletion.
async fn upload(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let (placement, ttl_sec) = placement(filer, &call)?;
    let extended = seaweed_headers(&call.headers)?;
    let mut target = call.target.path.clone();
    let mut existing = match call.target.directory_hint {
        true => None,
        false => Some(filer.namespace.find(&target).await?),
    };
    let into_dir = call.target.directory_hint
        || existing
            .as_ref()
            .is_some_and(|found| found.as_ref().is_some_and(|f| f.entry.is_directory()));
    if into_dir {
        // The file goes under it: what was read is not the entry the commit replaces.
        existing = None;
    }
    let (uploaded, mime) = if is_multipart(&call) {
        let part = read_part(call).await?;
        if into_dir {
            let name = part
                .filename
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    FilerError::bad_request(format!(
                        "upload to directory {target}: the part has no filename"
                    ))
                })?;
            target = path::clean(&path::join(&target, &name))
                .map_err(|e| FilerError::bad_request(e.to_string()))?
                .path;
        }
        let mime = part.content_type.clone().unwrap_or_default();
        (
            filer.writer.put_bytes(&placement, part.data, 0).await?,
            mime,
        )
    } else if into_dir {
        if !body_is_empty(&call) {
            return Err(FilerError::bad_request(format!(
                "{target} is a directory: a raw body needs a file name (PUT {target}/NAME)"
            )));
        }
        tree::make_directory(&filer.namespace, &target).await?;
        let name = path::name_of(&target);
        return Ok(json(201, &serde_json::json!({ "name": name }), false));
    } else {
        let mime = header(&call.headers, "content-type")
            .unwrap_or("")
            .to_string();
        (filer.writer.put_stream(&placement, call.body).await?, mime)
    };
    let mut entry = Entry::new_file(now_ns());
    entry.mime = mime_to_keep(&mime);
    entry.ttl_sec = ttl_sec;
    entry.extended = extended;
    entry.collection = placement.collection.clone();
    entry.replication = placement.replication.clone();
    commit_upload(filer, &target, existing, entry, uploaded).await
}

/// The Content-Type to remember: none for the generic ones.
fn mime_to_keep(content_type: &str) -> String {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.is_empty() || media == "application/octet-stream" || media.starts_with("multipart/") {
        return String::new();
    }
    content_type.trim().to_string()
}

async fn commit_upload(
    filer: &Arc<Filer>,
    target: &str,
    existing: Option<Option<Found>>,
    mut entry: Entry,
    uploaded: Uploaded,
) -> FilerResult<HttpResponse> {
    entry.chunks = uploaded.chunks.clone();
    entry.file_size = uploaded.size;
    entry.md5 = uploaded.md5_base64.clone();
    let committed = filer
        .namespace
        .update_from(target, existing, |old| match old {
            Some(old) if old.is_directory() => Err(FilerError::conflict(format!(
                "{target} is a directory: cannot write a file over it"
            ))),
            Some(old) => {
                let mut entry = entry.clone();
                entry.meta = old.meta.clone();
                Ok(Some(entry))
            }
            None => Ok(Some(entry.clone())),
        })
        .await;
    if let Err(error) = committed {
        filer.namespace.queue_deletes(uploaded.fids()).await?;
        return Err(error);
    }
    filer.metrics.files_written.fetch_add(1, Ordering::Relaxed);
    filer
        .metrics
        .bytes_written
        .fetch_add(uploaded.size, Ordering::Relaxed);
    let name = path::name_of(target);
    let mut response = json(
        201,
        &serde_json::json!({ "name": name, "size": uploaded.size }),
        false,
    );
    if let Ok(md5) = hyper::header::HeaderValue::from_str(&uploaded.md5_base64) {
        response.headers_mut().insert("content-md5", md5);
    }
    // The tickets go last: the lease they hold open stays open until the entry is committed.
    drop(uploaded);
    Ok(response)
}

/// `op=append`: the body's data added at the end of the file (made if absent).
async fn append(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let (placement, _) = placement(filer, &call)?;
    let target = call.target.path.clone();
    let (uploaded, name) = if is_multipart(&call) {
        let part = read_part(call).await?;
        let name = part
            .filename
            .clone()
            .unwrap_or_else(|| path::name_of(&target).to_string());
        (
            filer.writer.put_bytes(&placement, part.data, 0).await?,
            name,
        )
    } else {
        let name = path::name_of(&target).to_string();
        (filer.writer.put_stream(&placement, call.body).await?, name)
    };
    let committed = filer
        .namespace
        .update(&target, |old| {
            let mut entry = match old {
                Some(old) if old.is_directory() => {
                    return Err(FilerError::conflict(format!(
                        "{target} is a directory: cannot append"
                    )));
                }
                Some(old) => old.clone(),
                None => Entry::new_file(now_ns()),
            };
            let base = entry.file_size;
            for chunk in &uploaded.chunks {
                let mut chunk = chunk.clone();
                chunk.offset += base;
                entry.chunks.push(chunk);
            }
            entry.md5 = if base == 0 {
                uploaded.md5_base64.clone()
            } else {
                String::new()
            };
            entry.file_size = base + uploaded.size;
            entry.mtime_ns = now_ns();
            Ok(Some(entry))
        })
        .await;
    let entry = match committed {
        Ok(entry) => entry.expect("an append writes an entry"),
        Err(error) => {
            filer.namespace.queue_deletes(uploaded.fids()).await?;
            return Err(error);
        }
    };
    drop(uploaded);
    Ok(json(
        201,
        &serde_json::json!({ "name": name, "size": entry.file_size }),
        false,
    ))
}

/// `op=truncate&size=N`: the file cut to N bytes (chunks past it are deleted).
async fn truncate(filer: &Arc<Filer>, call: &Call) -> FilerResult<HttpResponse> {
    let target = &call.target.path;
    let size_text = call.params.value("size").unwrap_or("0");
    let size: u64 = size_text.parse().map_err(|_| {
        FilerError::bad_request(format!("truncate size {size_text:?} is not a number"))
    })?;
    let entry = filer
        .namespace
        .update(target, |old| {
            let Some(old) = old.filter(|o| !o.is_directory()) else {
                return Err(FilerError::not_found(target));
            };
            if size > old.file_size {
                return Err(FilerError::bad_request(format!(
                    "truncate {target} to {size} bytes: the file has {}",
                    old.file_size
                )));
            }
            let mut entry = old.clone();
            entry.chunks.retain(|c| c.offset < size);
            for chunk in &mut entry.chunks {
                chunk.size = chunk.size.min(size - chunk.offset);
            }
            if size != old.file_size {
                entry.md5 = String::new();
            }
            entry.file_size = size;
            entry.mtime_ns = now_ns();
            Ok(Some(entry))
        })
        .await?
        .expect("a truncate writes an entry");
    let name = path::name_of(target);
    Ok(json(
        200,
        &serde_json::json!({ "name": name, "size": entry.file_size }),
        false,
    ))
}

/// `op=meta&mode=overwrite|merge` with a JSON object of strings: FastDFS's set-metadata.
async fn set_meta(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let merge = match call.params.value("mode").unwrap_or("overwrite") {
        "overwrite" | "O" => false,
        "merge" | "M" => true,
        other => {
            return Err(FilerError::bad_request(format!(
                "mode={other:?} is not overwrite or merge"
            )));
        }
    };
    let target = call.target.path.clone();
    let body = Limited::new(call.body, 64 * 1024)
        .collect()
        .await
        .map_err(|e| FilerError::new(413, format!("metadata body unreadable or over 64 KiB: {e}")))?
        .to_bytes();
    let pairs = parse_meta(&body)?;
    let entry = filer
        .namespace
        .update(&target, |old| {
            let Some(old) = old.filter(|o| !o.is_directory()) else {
                return Err(FilerError::not_found(&target));
            };
            let mut entry = old.clone();
            if !merge {
                entry.meta.clear();
            }
            entry.meta.extend(pairs.clone());
            if entry.meta.len() > META_PAIRS_MAX {
                return Err(FilerError::bad_request(format!(
                    "over {META_PAIRS_MAX} metadata pairs"
                )));
            }
            Ok(Some(entry))
        })
        .await?
        .expect("a metadata update writes an entry");
    let meta = serde_json::to_value(&entry.meta).expect("a map serializes");
    Ok(json(200, &meta, false))
}

/// A JSON object of string values within FastDFS's limits.
pub fn parse_meta(body: &Bytes) -> FilerResult<BTreeMap<String, String>> {
    let pairs: BTreeMap<String, String> = serde_json::from_slice(body).map_err(|e| {
        FilerError::bad_request(format!("metadata must be a JSON object of strings: {e}"))
    })?;
    for (key, value) in &pairs {
        if key.is_empty() || key.len() > META_KEY_BYTES_MAX {
            return Err(FilerError::bad_request(format!(
                "metadata key {key:?} must have 1 to {META_KEY_BYTES_MAX} bytes"
            )));
        }
        if value.len() > META_VALUE_BYTES_MAX {
            return Err(FilerError::bad_request(format!(
                "metadata value of {key:?} is over {META_VALUE_BYTES_MAX} bytes"
            )));
        }
    }
    if pairs.len() > META_PAIRS_MAX {
        return Err(FilerError::bad_request(format!(
            "over {META_PAIRS_MAX} metadata pairs"
        )));
    }
    Ok(pairs)
}

pub async fn delete(filer: &Arc<Filer>, call: Call) -> FilerResult<HttpResponse> {
    let target = &call.target.path;
    if call.params.has("tagging") {
        let names: Vec<String> = call
            .params
            .value("tagging")
            .map(|list| {
                list.split(',')
                    .map(|n| canonical_header(&format!("seaweed-{}", n.trim())))
                    .collect()
            })
            .unwrap_or_default();
        tree::remove_tags(&filer.namespace, target, names).await?;
        return Ok(empty(202));
    }
    if target == "/" {
        return Err(FilerError::bad_request("the root cannot be deleted"));
    }
    let removed = tree::delete(&filer.namespace, target, call.params.flag("recursive")).await?;
    filer
        .metrics
        .entries_deleted
        .fetch_add(removed, Ordering::Relaxed);
    Ok(empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves header names come out in Go's canonical form and metadata limits are checked.
    #[test]
    fn canonical_names_and_meta_limits() {
        assert_eq!(canonical_header("seaweed-size-class"), "Seaweed-Size-Class");
        assert_eq!(canonical_header("seaweed-x"), "Seaweed-X");
        let ok = parse_meta(&Bytes::from_static(b"{\"a\":\"1\"}")).unwrap();
        assert_eq!(ok["a"], "1");
        let long_key = format!("{{\"{}\":\"v\"}}", "k".repeat(META_KEY_BYTES_MAX + 1));
        assert_eq!(parse_meta(&Bytes::from(long_key)).unwrap_err().status, 400);
        assert_eq!(
            parse_meta(&Bytes::from_static(b"[1]")).unwrap_err().status,
            400
        );
    }
}
