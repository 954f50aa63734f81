//! `postkeep queue list | retry [ID] | remove ID`: the operator's view of the outbound queue.
//! Works beside a running server: the queue's leases keep the two from stepping on each other.

use anyhow::Context;
use postkeep_outbound::Queue;

use crate::datadir::DataDir;
use crate::QueueAction;

pub async fn queue(action: QueueAction) -> anyhow::Result<()> {
    match action {
        QueueAction::List { data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let items = Queue::list(&store).await.context("cannot read the queue")?;
            if items.is_empty() {
                println!("queue is empty");
            }
            for item in items {
                let sender = if item.sender.is_empty() {
                    "<>"
                } else {
                    &item.sender
                };
                let state = if item.in_delivery {
                    " (being delivered)"
                } else {
                    ""
                };
                println!(
                    "{}  {} bytes  from {sender}  attempts {}  next {}{state}",
                    item.id,
                    item.size,
                    item.attempts,
                    format_time(item.next_attempt)
                );
                if let Some(reason) = &item.unreadable {
                    println!("    unreadable: {reason} (remove it)");
                }
                for rcpt in &item.recipients {
                    let reply = rcpt.reply.as_deref().unwrap_or("");
                    println!("    {}  {}  {reply}", rcpt.status.as_str(), rcpt.address);
                }
            }
            Ok(())
        }
        QueueAction::Retry { id, data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            let count = Queue::retry(&store, id.as_deref()).await?;
            println!("{count} message(s) scheduled for delivery now");
            Ok(())
        }
        QueueAction::Remove { id, data } => {
            let store = DataDir::load(&data)?.open_store().await?;
            if !Queue::remove(&store, &id).await? {
                anyhow::bail!("no queued message {id}");
            }
            println!("removed {id}");
            Ok(())
        }
    }
}

fn format_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}
