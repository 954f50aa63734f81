//! `postkeep keys rotate | rotate-master`.

use anyhow::Context;
use postkeep_crypto::MasterKey;

use crate::datadir::{sync_parent, DataDir};
use crate::KeysAction;

pub async fn keys(action: KeysAction) -> anyhow::Result<()> {
    match action {
        KeysAction::Rotate { data, scope } => {
            let dir = DataDir::load(&data)?;
            let store = dir.open_store().await?;
            for id in store.rotate_keys(scope.as_deref()).await? {
                println!("new data key {id}");
            }
            Ok(())
        }
        KeysAction::RotateMaster { data } => rotate_master(&DataDir::load(&data)?).await,
    }
}

/// Stages the new key file, re-wraps every data key in one transaction, then renames the new
/// file into place. A crash between the last two steps is finished at the next start (see
/// `DataDir::finish_interrupted_rotation`). A running server picks the new key up from the
/// file when it next needs the master key.
async fn rotate_master(dir: &DataDir) -> anyhow::Result<()> {
    let store = dir.open_store().await?;
    let new_master = MasterKey::generate();
    let from_env = DataDir::master_from_env();
    let pending = dir.pending_master_key_path();
    if !from_env {
        new_master
            .write_new_file(&pending)
            .context("cannot stage the new master key")?;
        sync_parent(&pending)?;
    }
    let count = store.keyring().rotate_master(&new_master).await?;
    if from_env {
        // The key lives outside the data directory: hand it to the operator once.
        println!("{}", new_master.to_hex().as_str());
        eprintln!(
            "re-wrapped {count} data keys; set {} to the key printed above before the next start",
            crate::datadir::MASTER_KEY_ENV
        );
        return Ok(());
    }
    std::fs::rename(&pending, dir.master_key_path())
        .context("cannot install the new master key")?;
    sync_parent(&dir.master_key_path())?;
    println!(
        "re-wrapped {count} data keys under the new master key {}",
        new_master.id()
    );
    Ok(())
}
