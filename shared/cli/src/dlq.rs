//! `mdp dlq list|show|redrive --stage S`: what is in a stage's dead-letter
//! queue and why, and moving it back (the library is `mdp_aws::dlq`). The
//! queues are the configured `<STAGE>_QUEUE_URL` and `<STAGE>_DLQ_URL`, on
//! AWS or on the endpoint `AWS_ENDPOINT_URL` names (moto locally); failure
//! records come from the configured lake.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use mdp_aws::dlq::{self, DlqEntry, Explained, REDRIVE_SAFETY, StageQueues};
use mdp_core::lake::FailureRecord;
use mdp_core::queue::{StageName, format_time};
use mdp_core::{Config, Lake, StageError};

/// The widest reason `mdp dlq list` prints on a row, in characters.
const LIST_REASON_CHARS: usize = 120;

#[derive(Subcommand)]
pub enum DlqAction {
    /// Every message of the stage's dead-letter queue and why it is there,
    /// without consuming any.
    List {
        /// fetch, transform or load.
        #[arg(long)]
        stage: StageName,
    },
    /// One message in full: body, attributes, failure record.
    Show {
        /// fetch, transform or load.
        #[arg(long)]
        stage: StageName,
        /// Its message id (as `mdp dlq list` prints it).
        message_id: String,
    },
    /// Move every message of the stage's dead-letter queue back to the
    /// stage's queue (safe: every stage is idempotent).
    Redrive {
        /// fetch, transform or load.
        #[arg(long)]
        stage: StageName,
    },
}

impl DlqAction {
    fn stage(&self) -> StageName {
        match self {
            DlqAction::List { stage }
            | DlqAction::Show { stage, .. }
            | DlqAction::Redrive { stage } => *stage,
        }
    }
}

/// Runs the action; exit 0 when it did what it said, 1 when a message was
/// not found or a redrive was incomplete, 2 when the stage's queue URLs are
/// not configured.
pub async fn run_dlq(action: DlqAction, config: &Config) -> Result<ExitCode, StageError> {
    let queues = match StageQueues::from_config(config, action.stage()) {
        Ok(queues) => queues,
        Err(e) => {
            eprintln!("mdp: {}", e.message());
            return Ok(ExitCode::from(2));
        }
    };
    let sdk = mdp_aws::load_sdk_config().await;
    let client = mdp_aws::sqs_client(&sdk);
    let lake = mdp_aws::open_lake(config, &sdk);
    match action {
        DlqAction::List { .. } => {
            let listing = dlq::list(&client, Some(&lake), &queues).await?;
            print!("{}", render_list(&queues, &listing));
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Show { message_id, .. } => {
            match dlq::show(&client, Some(&lake), &queues, &message_id).await? {
                Some(entry) => {
                    print!("{}", render_show(&queues, &lake, &entry));
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    let record = dlq::failure_record(&lake, queues.stage, &message_id).await?;
                    print!(
                        "{}",
                        render_not_found(&queues, &lake, &message_id, record.as_ref())
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        DlqAction::Redrive { .. } => {
            let report = dlq::redrive(&client, Some(&lake), &queues).await?;
            print!("{}", render_redrive(&queues, &report));
            Ok(
                if report.stopped.is_none() && report.not_deleted.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or("-".to_string(), format_time)
}

/// `text` on one line, at most `max` characters (an ellipsis ends a cut one).
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub fn render_list(queues: &StageQueues, listing: &dlq::Listing) -> String {
    let mut out = String::new();
    let n = listing.entries.len();
    let _ = writeln!(
        out,
        "{} dead-letter queue {}: {n} message{}",
        queues.stage,
        queues.dlq_url,
        if n == 1 { "" } else { "s" }
    );
    if n > 0 {
        let _ = writeln!(
            out,
            "{:<37} {:<12} {:<25} {:<10} REASON",
            "MESSAGE ID", "TICKER", "FIRST FAILURE", "CLASS"
        );
    }
    for entry in &listing.entries {
        let reason = match entry.explained() {
            Explained::Attributes => one_line(entry.reason().unwrap_or(""), LIST_REASON_CHARS),
            Explained::FailureRecord => format!(
                "{} (last of {} receives, failure record)",
                one_line(entry.reason().unwrap_or(""), LIST_REASON_CHARS),
                entry.record.as_ref().map_or(0, |r| r.receive_count)
            ),
            Explained::Unexplained => {
                "(no mdp attributes and no failure record: sent by something else?)".to_string()
            }
        };
        let _ = writeln!(
            out,
            "{:<37} {:<12} {:<25} {:<10} {reason}",
            entry.message.message_id,
            entry.ticker().unwrap_or_else(|| "-".into()),
            time(entry.first_failure()),
            entry
                .error_class()
                .map_or("-".to_string(), |c| c.to_string()),
        );
    }
    if listing.unseen > 0 {
        let _ = writeln!(
            out,
            "about {} more not seen: SQS hands out a FIFO message group's messages in order, \
             ten at a time, so a ticker's later ones show once its first are redriven",
            listing.unseen
        );
    }
    if n > 0 {
        let _ = writeln!(
            out,
            "the whole message: mdp dlq show --stage {} <message id>; move them all back: \
             mdp dlq redrive --stage {}",
            queues.stage, queues.stage
        );
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A value that may span lines, its later lines indented under the first.
fn continued(text: &str, indent: usize) -> String {
    text.trim_end()
        .replace('\n', &format!("\n{}", " ".repeat(indent)))
}

fn render_record(
    out: &mut String,
    lake: &Lake,
    stage: StageName,
    id: &str,
    record: Option<&FailureRecord>,
) {
    let key = Lake::failure_key(stage, id);
    match record {
        Some(record) => {
            let _ = writeln!(out, "failure record ({}/{key}):", lake.uri());
            let _ = writeln!(out, "  error class    {}", record.error_class);
            let _ = writeln!(
                out,
                "  first failure  {}",
                format_time(record.first_failure)
            );
            let _ = writeln!(out, "  last failure   {}", format_time(record.last_failure));
            let _ = writeln!(out, "  receive count  {}", record.receive_count);
            if let Some(ticker) = &record.ticker {
                let _ = writeln!(out, "  ticker         {ticker}");
            }
            let _ = writeln!(out, "  reason         {}", continued(&record.reason, 17));
        }
        None => {
            let _ = writeln!(out, "failure record: none at {}/{key}", lake.uri());
        }
    }
}

pub fn render_show(queues: &StageQueues, lake: &Lake, entry: &DlqEntry) -> String {
    let m = &entry.message;
    let mut out = String::new();
    let _ = writeln!(out, "message        {}", m.message_id);
    let _ = writeln!(
        out,
        "queue          {} ({} dead-letter queue)",
        queues.dlq_url, queues.stage
    );
    let _ = writeln!(
        out,
        "ticker         {}",
        entry.ticker().unwrap_or_else(|| "-".into())
    );
    if let Some(group) = m.group_id() {
        let _ = writeln!(out, "group          {group}");
    }
    if let Some(sent) = m
        .sent_timestamp_ms()
        .and_then(DateTime::from_timestamp_millis)
    {
        let _ = writeln!(out, "sent           {}", format_time(sent));
    }
    let _ = writeln!(out, "first failure  {}", time(entry.first_failure()));
    let _ = writeln!(
        out,
        "error class    {}",
        entry
            .error_class()
            .map_or("-".to_string(), |c| c.to_string())
    );
    let _ = writeln!(
        out,
        "reason         {}",
        continued(entry.reason().unwrap_or("-"), 15)
    );
    let _ = writeln!(out, "body:");
    out.push_str(&indent(&m.body));
    let _ = writeln!(out, "message attributes:");
    if m.attributes.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (name, value) in &m.attributes {
        let _ = writeln!(out, "  {name} = {}", continued(value, 4));
    }
    let _ = writeln!(out, "system attributes:");
    for (name, value) in &m.system_attributes {
        let _ = writeln!(out, "  {name} = {value}");
    }
    render_record(
        &mut out,
        lake,
        queues.stage,
        &m.message_id,
        entry.record.as_ref(),
    );
    out
}

pub fn render_not_found(
    queues: &StageQueues,
    lake: &Lake,
    message_id: &str,
    record: Option<&FailureRecord>,
) -> String {
    let mut out = format!(
        "no message {message_id} in the {} dead-letter queue {} (redriven, expired, or behind \
         the first ten of its FIFO group)\n",
        queues.stage, queues.dlq_url
    );
    if record.is_some() {
        render_record(&mut out, lake, queues.stage, message_id, record);
    }
    out
}

pub fn render_redrive(queues: &StageQueues, report: &dlq::RedriveReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "moved {} message{} from {} back to {}: {REDRIVE_SAFETY}",
        report.moved,
        if report.moved == 1 { "" } else { "s" },
        queues.dlq_url,
        queues.source_url
    );
    if report.left_new > 0 {
        let _ = writeln!(
            out,
            "left {} that reached the dead-letter queue after the redrive began \
             (failing again? see mdp dlq list --stage {})",
            report.left_new, queues.stage
        );
    }
    if !report.not_deleted.is_empty() {
        let _ = writeln!(
            out,
            "sent but not deleted from the dead-letter queue (now in both; a duplicate is \
             harmless, the stages being idempotent): {}",
            report.not_deleted.join(", ")
        );
    }
    if let Some(why) = &report.stopped {
        let _ = writeln!(
            out,
            "stopped early, the rest stays in the dead-letter queue: {why}"
        );
    }
    let _ = writeln!(
        out,
        "the dead-letter queue holds about {} now",
        report.approximate_left
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_lines_of_a_value_are_indented() {
        assert_eq!(continued("a\nb\n", 2), "a\n  b");
    }

    #[test]
    fn list_reasons_are_one_line_and_cut() {
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("ééééé", 5), "ééééé");
        assert_eq!(one_line("éééééé", 5), "éééé…");
    }
}
