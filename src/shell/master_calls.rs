//! `volume.fix.replication` and `volume.check.disk`: the master does the work (its
//! `POST /vol/fix_replication` and `POST /vol/repair`); the shell prints its answer, one line
//! per action or replica, and fails when any failed.

use std::time::Duration;

use serde::Deserialize;

use super::flags::{Flag, Flags};
use super::limits::MASTER_REPAIR_TIMEOUT_MS;
use super::{CommandSpec, Shell};

const VOLUME_ID: Flag = Flag {
    name: "volumeId",
    takes_value: true,
    help: "only this volume (else every volume)",
};

pub const FIX_REPLICATION_SPEC: CommandSpec = CommandSpec {
    name: "volume.fix.replication",
    help: "copy volumes with fewer copies than their placement asks to servers that keep it, \
           trim extra copies (the plan only, without -apply)",
    flags: &[
        VOLUME_ID,
        Flag {
            name: "apply",
            takes_value: false,
            help: "make the copies and trims",
        },
    ],
};

pub const CHECK_DISK_SPEC: CommandSpec = CommandSpec {
    name: "volume.check.disk",
    help: "compare each replicated volume's copies and repair what one lacks (anti-entropy)",
    flags: &[VOLUME_ID],
};

#[derive(Debug, Deserialize)]
struct FixAnswer {
    volumes: Vec<FixVolume>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FixVolume {
    volume_id: u32,
    placement: String,
    replicas: Vec<String>,
    actions: Vec<FixAction>,
}

#[derive(Debug, Deserialize)]
struct FixAction {
    action: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    at: Option<String>,
    done: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RepairAnswer {
    volumes: Vec<RepairVolume>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepairVolume {
    volume_id: u32,
    replicas: Vec<RepairReplica>,
}

#[derive(Debug, Deserialize)]
struct RepairReplica {
    url: String,
    #[serde(default)]
    copied: u64,
    #[serde(default)]
    deleted: u64,
    #[serde(default)]
    skipped: u64,
    error: Option<String>,
}

pub async fn fix_replication_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let mut query = Vec::new();
    if let Some(volume_id) = flags.volume_id()? {
        query.push(format!("volumeId={volume_id}"));
    }
    let apply = flags.switch("apply")?;
    if apply {
        query.push("apply=true".into());
    }
    let answer = post(shell, "/vol/fix_replication", &query.join("&")).await?;
    let (text, failures) = format_fix_replication(&answer, apply)?;
    print!("{text}");
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} actions failed")),
    }
}

pub async fn check_disk_command(shell: &Shell, flags: &Flags) -> Result<(), String> {
    let query = match flags.volume_id()? {
        Some(volume_id) => format!("volumeId={volume_id}"),
        None => String::new(),
    };
    let answer = post(shell, "/vol/repair", &query).await?;
    let (text, failures) = format_repair(&answer)?;
    print!("{text}");
    match failures {
        0 => Ok(()),
        n => Err(format!("{n} replicas could not be repaired")),
    }
}

/// POST `path?query` to the master; its JSON answer, or its error.
async fn post(shell: &Shell, path: &str, query: &str) -> Result<Vec<u8>, String> {
    let mut url = format!("http://{}{path}", shell.master);
    if !query.is_empty() {
        url.push('?');
        url.push_str(query);
    }
    let timeout = Duration::from_millis(MASTER_REPAIR_TIMEOUT_MS);
    let reply = shell
        .http
        .call(hyper::Method::POST, &url, &[], bytes::Bytes::new(), timeout)
        .await
        .map_err(|e| e.to_string())?;
    if reply.status == 200 {
        return Ok(reply.body.to_vec());
    }
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let error = answer["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
    Err(format!("{url}: status {}: {error}", reply.status))
}

/// The lines of a `/vol/fix_replication` answer, and how many actions failed.
pub fn format_fix_replication(body: &[u8], applied: bool) -> Result<(String, usize), String> {
    let answer: FixAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("the master's /vol/fix_replication answer: {e}"))?;
    let mut text = String::new();
    let (mut failures, mut planned) = (0, 0);
    for volume in &answer.volumes {
        text.push_str(&format!(
            "volume {} placement {} replicas {:?}\n",
            volume.volume_id, volume.placement, volume.replicas
        ));
        for action in &volume.actions {
            let what = match action.action.as_str() {
                "copy" => format!(
                    "copy {} -> {}",
                    action.from.as_deref().unwrap_or("?"),
                    action.to.as_deref().unwrap_or("?")
                ),
                "trim" => format!("trim at {}", action.at.as_deref().unwrap_or("?")),
                other => other.to_string(),
            };
            let state = match (&action.error, action.done) {
                (Some(error), _) => {
                    failures += 1;
                    format!("failed: {error}")
                }
                (None, true) => "done".to_string(),
                (None, false) => {
                    planned += 1;
                    "planned".to_string()
                }
            };
            text.push_str(&format!("  {what}: {state}\n"));
        }
    }
    if answer.volumes.is_empty() {
        text.push_str("every volume has the copies its placement asks for\n");
    } else if !applied && planned > 0 {
        text.push_str(&format!(
            "{planned} actions planned; run with -apply to make them\n"
        ));
    }
    Ok((text, failures))
}

/// The lines of a `/vol/repair` answer, and how many replicas failed.
pub fn format_repair(body: &[u8]) -> Result<(String, usize), String> {
    let answer: RepairAnswer = serde_json::from_slice(body)
        .map_err(|e| format!("the master's /vol/repair answer: {e}"))?;
    let mut text = String::new();
    let mut failures = 0;
    for volume in &answer.volumes {
        for replica in &volume.replicas {
            let line = match &replica.error {
                Some(error) => {
                    failures += 1;
                    format!(
                        "volume {} on {}: failed: {error}\n",
                        volume.volume_id, replica.url
                    )
                }
                None => format!(
                    "volume {} on {}: copied {} deleted {} skipped {}\n",
                    volume.volume_id, replica.url, replica.copied, replica.deleted, replica.skipped
                ),
            };
            text.push_str(&line);
        }
    }
    if answer.volumes.is_empty() {
        text.push_str("no replicated volume to check\n");
    }
    Ok((text, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the plan, the done and the failed actions are told apart, and failures counted.
    #[test]
    fn fix_replication_lines() {
        let body = br#"{"volumes":[{"volumeId":3,"placement":"010","replicas":["a:1"],
            "actions":[{"action":"copy","from":"a:1","to":"b:1","done":false,"error":null},
            {"action":"trim","at":"c:1","done":false,"error":"c:1 is down"}]}]}"#;
        let (text, failures) = format_fix_replication(body, false).unwrap();
        assert_eq!(
            text,
            "volume 3 placement 010 replicas [\"a:1\"]\n  copy a:1 -> b:1: planned\n  \
             trim at c:1: failed: c:1 is down\n1 actions planned; run with -apply to make them\n"
        );
        assert_eq!(failures, 1);
        let (text, failures) = format_fix_replication(br#"{"volumes":[]}"#, true).unwrap();
        assert_eq!(text, "every volume has the copies its placement asks for\n");
        assert_eq!(failures, 0);
        assert!(format_fix_replication(b"{}", true).is_err());
    }

    // Proves each replica's counts or error is one line.
    #[test]
    fn repair_lines() {
        let body = br#"{"volumes":[{"volumeId":5,"replicas":[
            {"url":"a:1","copied":2,"deleted":1,"skipped":0,"error":null},
            {"url":"b:1","copied":0,"deleted":0,"skipped":0,"error":"b:1: connection refused"}]}]}"#;
        let (text, failures) = format_repair(body).unwrap();
        assert_eq!(
            text,
            "volume 5 on a:1: copied 2 deleted 1 skipped 0\nvolume 5 on b:1: failed: \
             b:1: connection refused\n"
        );
        assert_eq!(failures, 1);
    }
}
