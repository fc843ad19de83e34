//! A directory page: read from the store with SeaweedFS's `limit`, `lastFileName`,
//! `namePattern` and `namePatternExclude`, and written as SeaweedFS's JSON or as HTML.

use super::entry::{Entry, SeaweedEntry, seaweed_entry};
use super::error::{FilerError, FilerResult};
use super::limits::LIST_LIMIT_MAX;
use super::namespace::{Namespace, now_ns};
use super::path;

/// SeaweedFS prints its version in listings; clients ignore it.
const VERSION: &str = "kelp 0.1";

pub struct ListRequest {
    pub dir: String,
    pub last_file_name: String,
    pub limit: usize,
    pub pattern: Option<String>,
    pub exclude: Option<String>,
}

pub struct Page {
    pub dir: String,
    pub entries: Vec<(String, Entry)>,
    pub limit: usize,
    pub last_file_name: String,
    pub should_display_load_more: bool,
    /// The request's `lastFileName` ("" for the first page).
    pub requested_after: String,
}

impl ListRequest {
    pub fn limit_from(text: Option<&str>) -> FilerResult<usize> {
        match text {
            None | Some("") => Ok(LIST_LIMIT_MAX),
            Some(text) => match text.parse::<usize>() {
                Ok(limit) if limit > 0 => Ok(limit.min(LIST_LIMIT_MAX)),
                _ => Err(FilerError::bad_request(format!(
                    "limit {text:?} is not a positive number"
                ))),
            },
        }
    }
}

/// Read one page: up to `limit` matching entries after `last_file_name`, and whether more
/// follow.
pub async fn read_page(namespace: &Namespace, request: &ListRequest) -> FilerResult<Page> {
    let mut entries = Vec::new();
    let mut start = request.last_file_name.clone();
    let mut more = false;
    let now = now_ns();
    'pages: loop {
        let want = (request.limit + 1 - entries.len()).min(LIST_LIMIT_MAX + 1);
        let listed = namespace
            .store
            .list(&request.dir, &start, false, want)
            .await?;
        let exhausted = listed.len() < want;
        for item in listed {
            start.clone_from(&item.name);
            if !name_matches(&item.name, request) {
                continue;
            }
            let full = path::join(&request.dir, &item.name);
            let entry = Entry::decode(&item.value, &full).map_err(FilerError::internal)?;
            if entry.is_expired(now) {
                continue;
            }
            if entries.len() == request.limit {
                more = true;
                break 'pages;
            }
            entries.push((item.name, entry));
        }
        if exhausted {
            break;
        }
    }
    let last_file_name = entries.last().map(|(n, _)| n.clone()).unwrap_or_default();
    Ok(Page {
        dir: request.dir.clone(),
        entries,
        limit: request.limit,
        last_file_name,
        should_display_load_more: more,
        requested_after: request.last_file_name.clone(),
    })
}

fn name_matches(name: &str, request: &ListRequest) -> bool {
    if let Some(pattern) = &request.pattern
        && !wildcard_match(pattern, name)
    {
        return false;
    }
    if let Some(exclude) = &request.exclude
        && wildcard_match(exclude, name)
    {
        return false;
    }
    true
}

/// Shell-style match: `*` any run, `?` one character, everything else itself.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, n));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            n = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct SeaweedListing<'a> {
    version: &'static str,
    path: &'a str,
    entries: Option<Vec<SeaweedEntry<'a>>>,
    limit: usize,
    last_file_name: &'a str,
    should_display_load_more: bool,
    empty_folder: bool,
}

/// SeaweedFS's listing JSON (its field names, in its order).
pub fn json_bytes(page: &Page, pretty: bool) -> Vec<u8> {
    let paths: Vec<String> = page
        .entries
        .iter()
        .map(|(name, _)| path::join(&page.dir, name))
        .collect();
    let entries: Vec<SeaweedEntry<'_>> = page
        .entries
        .iter()
        .zip(&paths)
        .map(|((_, entry), full)| seaweed_entry(full, entry))
        .collect();
    let listing = SeaweedListing {
        version: VERSION,
        path: if page.dir == "/" {
            ""
        } else {
            page.dir.as_str()
        },
        entries: (!entries.is_empty()).then_some(entries),
        limit: page.limit,
        last_file_name: &page.last_file_name,
        should_display_load_more: page.should_display_load_more,
        empty_folder: page.entries.is_empty() && page.requested_after.is_empty(),
    };
    if pretty {
        serde_json::to_vec_pretty(&listing)
    } else {
        serde_json::to_vec(&listing)
    }
    .expect("listings serialize")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plain HTML page of the directory, with a link to the next page.
pub fn html(page: &Page) -> String {
    let mut rows = String::new();
    for (name, entry) in &page.entries {
        let href = escape(&path::join(&page.dir, name));
        let (shown, size) = if entry.is_directory() {
            (format!("{}/", escape(name)), String::new())
        } else {
            (escape(name), entry.file_size.to_string())
        };
        let modified = super::entry::rfc3339_nano(entry.mtime_ns);
        rows.push_str(&format!(
            "<tr><td><a href=\"{href}\">{shown}</a></td><td>{size}</td><td>{modified}</td></tr>\n"
        ));
    }
    let more = if page.should_display_load_more {
        format!(
            "<p><a href=\"?limit={}&lastFileName={}\">more</a></p>",
            page.limit,
            escape(&page.last_file_name)
        )
    } else {
        String::new()
    };
    let title = escape(&page.dir);
    format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Kelp filer: {title}</title></head>\n<body>\n\
         <h1>{title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n\
         {rows}</table>\n{more}\n</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the wildcard matcher handles stars, question marks and literal text.
    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.bin", "raw.bin"));
        assert!(!wildcard_match("*.bin", "hello.txt"));
        assert!(wildcard_match("h?llo*", "hello.txt"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("exact", "exact"));
    }
}
