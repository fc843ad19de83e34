//! Operations on whole entries and subtrees: directories made, deleted (recursively in
//! batches), renamed and copied; extended attributes changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::Filer;
use super::entry::{Entry, MODE_DIR, MODE_FILE_DEFAULT};
use super::error::{FilerError, FilerResult};
use super::limits::DELETE_BATCH_ENTRIES_MAX;
use super::namespace::{Found, Namespace, chunk_ops, now_ns};
use super::path::{self, RequestPath};
use super::store::{Expect, Op, StoreError};
use super::volumes::Placement;

pub async fn make_directory(namespace: &Namespace, dir: &str) -> FilerResult<()> {
    namespace
        .update(dir, |old| match old {
            Some(old) if old.is_directory() => Ok(Some(old.clone())),
            Some(_) => Err(FilerError::conflict(format!(
                "{dir} is a file, not a directory"
            ))),
            None => {
                // SeaweedFS gives a directory made by a request mode 0660, an implicit one 0771.
                let mut made = Entry::new_directory(now_ns());
                made.mode = MODE_DIR | MODE_FILE_DEFAULT;
                Ok(Some(made))
            }
        })
        .await?;
    Ok(())
}

/// Delete a file, or a directory (its contents too with `recursive`; a directory with
/// contents is refused without it, as SeaweedFS does). Returns the entries removed.
pub async fn delete(namespace: &Namespace, target: &str, recursive: bool) -> FilerResult<u64> {
    let Some(found) = namespace.find(target).await? else {
        return Ok(0);
    };
    if !found.entry.is_directory() {
        namespace
            .update_from(target, Some(Some(found)), |old| match old {
                Some(old) if old.is_directory() => Err(FilerError::conflict(format!(
                    "{target} became a directory meanwhile: delete it again"
                ))),
                _ => Ok(None),
            })
            .await?;
        return Ok(1);
    }
    let has_children = !namespace.store.list(target, "", false, 1).await?.is_empty();
    if has_children && !recursive {
        return Err(FilerError::internal(format!(
            "fail to delete non-empty folder: {target}"
        )));
    }
    let removed = delete_tree(namespace, target).await?;
    namespace.forget_directories_under(target);
    Ok(removed)
}

/// Delete everything under `dir`, then `dir`: a page of entries per store batch.
async fn delete_tree(namespace: &Namespace, dir: &str) -> FilerResult<u64> {
    let mut removed = 0;
    loop {
        let page = namespace
            .store
            .list(dir, "", false, DELETE_BATCH_ENTRIES_MAX)
            .await?;
        if page.is_empty() {
            break;
        }
        let mut ops = Vec::with_capacity(page.len() * 2);
        let mut dropped = false;
        for item in page {
            let full = path::join(dir, &item.name);
            let entry = Entry::decode(&item.value, &full).map_err(FilerError::internal)?;
            if entry.is_directory() {
                removed += Box::pin(delete_tree(namespace, &full)).await?;
                continue;
            }
            let (bookkeeping, some_dropped) = chunk_ops(Some(&entry), None);
            dropped |= some_dropped;
            ops.push(Op::Delete {
                path: full,
                expect: Expect::Exactly(item.value),
            });
            ops.extend(bookkeeping);
            removed += 1;
        }
        match namespace.apply(ops, dropped).await {
            // Another writer changed an entry of the page: read the page again.
            Err(FilerError { status: 409, .. }) => continue,
            other => other?,
        }
    }
    namespace
        .apply(
            vec![Op::Delete {
                path: dir.to_string(),
                expect: Expect::Any,
            }],
            false,
        )
        .await?;
    Ok(removed + 1)
}

fn missing_source(from: &str) -> FilerError {
    FilerError::bad_request(format!(
        "failed to get src entry '{from}', err: filer: no entry is found in filer store"
    ))
}

/// Where `from` lands for a target path: into it when it names a directory (a trailing `/`
/// or an existing directory), else at it.
async fn destination(namespace: &Namespace, from: &str, to: &RequestPath) -> FilerResult<String> {
    let into = to.directory_hint
        || namespace
            .find(&to.path)
            .await?
            .is_some_and(|f| f.entry.is_directory() && to.path != from);
    Ok(if into {
        path::join(&to.path, path::name_of(from))
    } else {
        to.path.clone()
    })
}

/// `mv.from`: move a file or a directory tree to `to`.
pub async fn rename(namespace: &Namespace, from: &str, to: &RequestPath) -> FilerResult<()> {
    if from == "/" {
        return Err(FilerError::bad_request("the root cannot be moved"));
    }
    let Some(source) = namespace.find(from).await? else {
        return Err(missing_source(from));
    };
    let target = destination(namespace, from, to).await?;
    if target == from {
        return Ok(());
    }
    if path::is_within(&target, from) {
        return Err(FilerError::bad_request(format!(
            "cannot move {from} into itself ({target})"
        )));
    }
    move_entry(namespace, from, source, &target).await
}

/// Move the entry at `from` (read as `source`) to exactly `target`.
async fn move_entry(
    namespace: &Namespace,
    from: &str,
    source: Found,
    target: &str,
) -> FilerResult<()> {
    if source.entry.is_directory() {
        move_tree(namespace, from, target).await?;
        namespace.forget_directories_under(from);
        return Ok(());
    }
    move_file(namespace, from, source, target).await
}

/// One atomic batch: the file leaves `from` and replaces whatever file was at `target`.
async fn move_file(
    namespace: &Namespace,
    from: &str,
    source: Found,
    target: &str,
) -> FilerResult<()> {
    let replaced = namespace.find(target).await?;
    if replaced.as_ref().is_some_and(|r| r.entry.is_directory()) {
        return Err(FilerError::conflict(format!(
            "{target} is a directory: cannot move a file over it"
        )));
    }
    let mut ops = namespace.parent_ops(target).await?;
    ops.push(Op::Delete {
        path: from.to_string(),
        expect: Expect::Exactly(source.raw.clone()),
    });
    let expect = match &replaced {
        Some(r) => Expect::Exactly(r.raw.clone()),
        None => Expect::Absent,
    };
    ops.push(Op::Put {
        path: target.to_string(),
        value: source.raw,
        expect,
    });
    let (bookkeeping, dropped) = chunk_ops(replaced.as_ref().map(|r| &r.entry), None);
    ops.extend(bookkeeping);
    namespace
        .apply(ops, dropped)
        .await
        .map_err(|error| match error.status {
            409 => FilerError::conflict(format!(
                "mv {from} {target}: {}",
                StoreError::Conflict {
                    path: target.to_string()
                }
            )),
            _ => error,
        })
}

/// A directory: made at `target`, its children moved one page at a time, then removed.
async fn move_tree(namespace: &Namespace, from: &str, target: &str) -> FilerResult<()> {
    make_directory(namespace, target).await?;
    loop {
        let page = namespace
            .store
            .list(from, "", false, DELETE_BATCH_ENTRIES_MAX)
            .await?;
        if page.is_empty() {
            break;
        }
        for item in page {
            let child = path::join(from, &item.name);
            let entry = Entry::decode(&item.value, &child).map_err(FilerError::internal)?;
            let source = Found {
                entry,
                raw: item.value,
            };
            let child_target = path::join(target, &item.name);
            Box::pin(move_entry(namespace, &child, source, &child_target)).await?;
        }
    }
    namespace
        .apply(
            vec![Op::Delete {
                path: from.to_string(),
                expect: Expect::Any,
            }],
            false,
        )
        .await
}

/// `cp.from`: a file's data copied into new chunks and a new entry at `to`.
pub async fn copy(filer: &Arc<Filer>, from: &str, to: &RequestPath) -> FilerResult<()> {
    let Some(source) = filer.namespace.find(from).await? else {
        return Err(FilerError::bad_request(format!(
            "failed to get src entry '{from}': filer: no entry is found in filer store"
        )));
    };
    if source.entry.is_directory() {
        return Err(FilerError::bad_request(format!(
            "cp.from {from} is a directory: copy its files one by one"
        )));
    }
    let target = destination(&filer.namespace, from, to).await?;
    if target == from {
        return Err(FilerError::bad_request(format!(
            "cp.from {from} onto itself"
        )));
    }
    let placement = Placement {
        collection: source.entry.collection.clone(),
        replication: source.entry.replication.clone(),
        ttl: String::new(),
    };
    let mut entry = source.entry.clone();
    entry.chunks.clear();
    entry.inode = rand::random();
    entry.mtime_ns = now_ns();
    let mut tickets = Vec::new();
    for chunk in &source.entry.chunks {
        let response = filer
            .volumes
            .fetch(&chunk.fid, Some((0, chunk.size.max(1) - 1)))
            .await?;
        let data: Bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| FilerError::new(502, format!("read chunk {}: {e}", chunk.fid)))?
            .to_bytes();
        let uploaded = filer
            .writer
            .put_bytes(&placement, data, chunk.offset)
            .await?;
        entry.chunks.extend(uploaded.chunks.iter().cloned());
        tickets.push(uploaded);
    }
    let fids: Vec<String> = entry.chunks.iter().map(|c| c.fid.clone()).collect();
    let committed = filer
        .namespace
        .update(&target, |old| match old {
            Some(old) if old.is_directory() => {
                Err(FilerError::conflict(format!("{target} is a directory")))
            }
            _ => Ok(Some(entry.clone())),
        })
        .await;
    if let Err(error) = committed {
        filer.namespace.queue_deletes(fids).await?;
        return Err(error);
    }
    drop(tickets);
    Ok(())
}

/// `PUT ?tagging`: `Seaweed-*` headers added to (or replacing values of) the entry's.
pub async fn set_tags(
    namespace: &Namespace,
    target: &str,
    tags: BTreeMap<String, String>,
) -> FilerResult<()> {
    namespace
        .update(target, |old| {
            let mut entry = old.cloned().ok_or_else(|| FilerError::not_found(target))?;
            entry.extended.extend(tags.clone());
            Ok(Some(entry))
        })
        .await?;
    Ok(())
}

/// `DELETE ?tagging[=A,B]`: the named `Seaweed-*` attributes removed, or all of them.
pub async fn remove_tags(
    namespace: &Namespace,
    target: &str,
    names: Vec<String>,
) -> FilerResult<()> {
    namespace
        .update(target, |old| {
            let mut entry = old.cloned().ok_or_else(|| FilerError::not_found(target))?;
            if names.is_empty() {
                entry
                    .extended
                    .retain(|name, _| !name.starts_with("Seaweed-"));
            } else {
                entry.extended.retain(|name, _| !names.contains(name));
            }
            Ok(Some(entry))
        })
        .await?;
    Ok(())
}
