//! Cross-process change poller (docs/imap-plan.md §2.2). Commits made through this process's
//! [`MailStore`](crate::MailStore) notify the hub themselves; this task catches the rest (a CLI
//! import, a second server) by polling [`MetadataStore::change_counter`] and refreshing every
//! watched mailbox with [`MetadataStore::highest_modseqs`] when it moves.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;

use crate::hub::{ChangeHub, MAILBOX_DELETED};
use crate::meta::MetadataStore;
use crate::StoreError;

/// A cross-process change reaches IDLE within this plus one query (plan target: 1 s).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Owned by the `MailStore`: dropping it drops the stop sender, which ends the task at once.
pub(crate) struct ChangePoller {
    _stop: oneshot::Sender<()>,
}

impl ChangePoller {
    /// The task holds the hub only weakly, so it never keeps a dropped store's hub alive.
    pub(crate) fn spawn(meta: Arc<dyn MetadataStore>, hub: Weak<ChangeHub>) -> Self {
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run(meta, hub, stopped));
        Self { _stop: stop }
    }
}

async fn run(
    meta: Arc<dyn MetadataStore>,
    hub: Weak<ChangeHub>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = PollState::default();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = ticks.tick() => {}
        }
        let Some(hub) = hub.upgrade() else {
            return;
        };
        state.poll(meta.as_ref(), &hub).await;
    }
}

#[derive(Default)]
struct PollState {
    /// The counter at the last successful refresh; `None` forces the next one (at start, after
    /// a time nobody watched, after an error).
    counter: Option<u64>,
    failing: bool,
}

impl PollState {
    async fn poll(&mut self, meta: &dyn MetadataStore, hub: &ChangeHub) {
        // Nobody watching: no queries. Commits meanwhile are unseen, hence the forced refresh.
        if hub.watched_ids().is_empty() {
            self.counter = None;
            return;
        }
        match self.refresh(meta, hub).await {
            Ok(()) => self.failing = false,
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "cross-process change poll failed");
                }
                self.failing = true;
                self.counter = None;
            }
        }
    }

    async fn refresh(
        &mut self,
        meta: &dyn MetadataStore,
        hub: &ChangeHub,
    ) -> Result<(), StoreError> {
        // The counter is read before the watched set: a mailbox watched only after that read
        // that changes later moves the counter again, so the next tick still refreshes it.
        let counter = meta.change_counter().await?;
        if self.counter == Some(counter) {
            return Ok(());
        }
        let watched = hub.watched_ids();
        let current = meta.highest_modseqs(&watched).await?;
        for id in &watched {
            // `highest_modseqs` omits mailboxes that no longer exist: deleted elsewhere.
            let modseq = current
                .iter()
                .find(|(found, _)| found == id)
                .map_or(MAILBOX_DELETED, |(_, modseq)| *modseq);
            // The hub ignores values that do not move forward (our own commits got there first).
            hub.notify(*id, modseq);
        }
        self.counter = Some(counter);
        Ok(())
    }
}
