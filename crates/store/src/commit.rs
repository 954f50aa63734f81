//! Group commit: concurrent deliveries share one directory sync and one database commit
//! instead of paying an fsync each. A single task owns the commit step; while it syncs one
//! batch, the next batch queues up behind it, so batches grow exactly when load does.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::blob::{BlobArea, BlobStore};
use crate::meta::MetadataStore;
use crate::model::{Appended, NewMessage};
use crate::StoreError;

/// Upper bound of messages in one transaction, so one commit never grows without bound.
const MAX_BATCH: usize = 512;

struct Job {
    batch: Vec<NewMessage>,
    reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
}

pub(crate) struct GroupCommitter {
    queue: mpsc::Sender<Job>,
}

impl GroupCommitter {
    pub(crate) fn spawn(meta: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> Self {
        let (queue, jobs) = mpsc::channel(4096);
        tokio::spawn(run(meta, blobs, jobs));
        Self { queue }
    }

    pub(crate) async fn commit(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { batch, reply })
            .await
            .map_err(|_| StoreError::Backend("commit task stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("commit task stopped".into()))?
    }
}

async fn run(
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    mut jobs: mpsc::Receiver<Job>,
) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut size = group[0].batch.len();
        while size < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    size += job.batch.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit_group(meta.as_ref(), blobs.as_ref(), group).await;
    }
}

async fn commit_group(meta: &dyn MetadataStore, blobs: &dyn BlobStore, group: Vec<Job>) {
    let blob_ids: Vec<String> = group
        .iter()
        .flat_map(|job| job.batch.iter())
        .filter(|m| !m.record.inline)
        .map(|m| m.record.blob_id.clone())
        .collect();
    // Blob names must be durable before metadata that points at them is committed.
    if let Err(e) = blobs.sync(BlobArea::Mail, &blob_ids).await {
        let text = e.to_string();
        for job in group {
            let _ = job.reply.send(Err(StoreError::Backend(text.clone())));
        }
        return;
    }
    if group.len() == 1 {
        let job = group.into_iter().next().expect("group has one job");
        let result = meta.append_messages(&job.batch).await;
        let _ = job.reply.send(result);
        return;
    }
    let all: Vec<NewMessage> = group.iter().flat_map(|j| j.batch.iter().cloned()).collect();
    match meta.append_messages(&all).await {
        Ok(mut appended) => {
            for job in group {
                let rest = appended.split_off(job.batch.len().min(appended.len()));
                let _ = job.reply.send(Ok(std::mem::replace(&mut appended, rest)));
            }
        }
        // One bad job must not fail its neighbours: retry each on its own.
        Err(_) => {
            for job in group {
                let result = meta.append_messages(&job.batch).await;
                let _ = job.reply.send(result);
            }
        }
    }
}
