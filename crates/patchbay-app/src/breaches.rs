//! The end of an SLA breach (issue 15): `sla.resolved`, raised in the
//! transaction of the change that ended it — the assessment that resolves
//! the finding, or the exception that now covers it — once per finding.
//!
//! Apart from [`crate::sla`] (which reads the worklist's ranking) so the
//! assessment can call it without depending on the ranking.

use crate::AppError;
use crate::change::Change;
use jiff::Timestamp;
use serde_json::json;
use std::collections::HashSet;

/// Why a breach ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    /// A later inventory shows a fixed version (or the package gone).
    Fixed,
    /// An exception granted now covers the finding.
    Exception(String),
}

/// Inside `tx` (the change that fixed or excepted them): raises
/// `sla.resolved` for each finding of `findings` (names `F-…`) whose
/// `sla.breached` was raised and has not ended yet, once per finding;
/// returns how many. Reads the open breaches only when `findings` is not
/// empty.
pub(crate) async fn end_breaches(
    tx: &mut Change<'_>,
    findings: &HashSet<String>,
    why: &Ended,
    now: Timestamp,
) -> Result<usize, AppError> {
    if findings.is_empty() {
        return Ok(0);
    }
    let open = tx.noted_without("sla.breached", "sla.resolved").await?;
    let mut ended = 0;
    for (subject, kept) in open {
        let Some(id) = subject.strip_prefix("finding:") else {
            continue;
        };
        if !findings.contains(id) || !tx.note_once(&subject, "sla.resolved", now).await? {
            continue;
        }
        let mut detail = match kept {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let (reason, message) = match why {
            Ended::Fixed => ("fixed", format!("SLA breach ended: {id} is fixed")),
            Ended::Exception(e) => {
                detail.insert("exception".into(), json!(e));
                (
                    "exception",
                    format!("SLA breach ended: {id} is covered by exception {e}"),
                )
            }
        };
        detail.insert("reason".into(), json!(reason));
        detail.insert("message".into(), json!(message));
        tx.audit("sla.resolved", &subject, serde_json::Value::Object(detail))
            .await?;
        ended += 1;
    }
    Ok(ended)
}
