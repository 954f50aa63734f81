//! Real peers for the queue's tests: a throwaway Postfix as the remote MX
//! (`tests/postfix/postfix-mx.sh`), NSD as the authoritative server of the test zones, and a
//! postkeep store that can be reopened as after a restart.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postkeep_crypto::MasterKey;
use postkeep_delivery::Deliverer;
use postkeep_net::dns::{DnsSettings, Resolver};
use postkeep_outbound::{Queue, QueueSettings};
use postkeep_store::{KeyScope, MailStore, MailboxRole, MasterLoader};

pub const DOMAIN: &str = "example.org";
pub const ALICE: &str = "alice@example.org";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A TCP port free on 127.0.0.1 (and, for NSD, UDP too).
pub fn free_port(udp_too: bool) -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("local address").port();
        if !udp_too || UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Polls `check` until it yields `Some`, or panics naming `what` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Postfix on 127.0.0.1:`port`, the MX of `domains`, mailboxes for `users`.
pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Postfix {
    pub fn start(domains: &[&str], users: &[&str], access: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("users"), lines(users)).expect("write users");
        std::fs::write(dir.path().join("access"), lines(access)).expect("write access");
        let port = free_port(false);
        let mut args = vec![
            "start".to_string(),
            dir.path().display().to_string(),
            port.to_string(),
        ];
        args.extend(domains.iter().map(|d| d.to_string()));
        run_script(&args);
        Self { dir, port }
    }

    /// Replaces the access(5) table (RCPT TO answers) and makes Postfix use it.
    pub fn set_access(&self, access: &[&str]) {
        std::fs::write(self.dir.path().join("access"), lines(access)).expect("write access");
        run_script(&["reload".into(), self.dir.path().display().to_string()]);
    }

    /// The messages delivered to `address`, oldest first.
    pub fn maildir(&self, address: &str) -> Vec<Vec<u8>> {
        let (local, domain) = address.split_once('@').expect("an address");
        let new = self
            .dir
            .path()
            .join("mail")
            .join(domain)
            .join(local)
            .join("Maildir/new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read(f).expect("read a delivered message"))
            .collect()
    }

    /// Waits until `address` holds `count` messages (Postfix files mail after its 250) and
    /// returns them.
    pub async fn wait_maildir(&self, address: &str, count: usize) -> Vec<Vec<u8>> {
        wait_for(
            Duration::from_secs(30),
            "Postfix to file the mail",
            || async {
                let messages = self.maildir(address);
                (messages.len() >= count).then_some(messages)
            },
        )
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        run_script(&["stop".into(), self.dir.path().display().to_string()]);
    }
}

fn lines(items: &[&str]) -> String {
    items.iter().map(|l| format!("{l}\n")).collect()
}

fn run_script(args: &[String]) {
    let script = repo_root().join("tests/postfix/postfix-mx.sh");
    let out = Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// NSD serving `zones` (`(origin, records)`) on 127.0.0.1, UDP and TCP.
pub struct Nsd {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Nsd {
    pub async fn start(zones: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().display().to_string();
        let port = free_port(true);
        let mut conf = format!(
            "server:\n    ip-address: 127.0.0.1\n    port: {port}\n    do-ip6: no\n    \
             username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    \
             zonelistfile: \"{d}/zone.list\"\n    database: \"\"\n    pidfile: \"{d}/nsd.pid\"\n    \
             xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    logfile: \"{d}/nsd.log\"\n    \
             server-count: 1\n    verbosity: 1\nremote-control:\n    control-enable: no\n"
        );
        for (origin, records) in zones {
            let zone = format!(
                "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60\n\
                 @ IN NS ns.{origin}.\nns IN A 127.0.0.1\n{records}\n"
            );
            std::fs::write(dir.path().join(format!("{origin}.zone")), zone).expect("write zone");
            conf.push_str(&format!(
                "zone:\n    name: \"{origin}\"\n    zonefile: \"{origin}.zone\"\n"
            ));
        }
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write nsd.conf");
        let nsd = ["/usr/sbin/nsd", "/usr/local/sbin/nsd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nsd");
        let child = Command::new(nsd)
            .args(["-d", "-c"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start NSD (scripts/test installs it): {e}"));
        let nsd = Self { dir, port, child };
        nsd.wait_ready(zones.first().map(|z| z.0).unwrap_or("test"))
            .await;
        nsd
    }

    pub fn settings(&self) -> DnsSettings {
        DnsSettings {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], self.port))],
            timeout: Duration::from_secs(2),
        }
    }

    async fn wait_ready(&self, origin: &str) {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
        };
        let mut udp = ConnectionConfig::udp();
        udp.port = self.port;
        let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
            "127.0.0.1".parse().expect("an address"),
            true,
            vec![udp],
        )]);
        let mut options = ResolverOpts::default();
        options.timeout = Duration::from_millis(300);
        options.attempts = 1;
        options.cache_size = 0;
        let resolver = hickory_resolver::TokioResolver::builder_with_config(
            config,
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .expect("a resolver");
        let name = format!("{origin}.");
        wait_for(Duration::from_secs(20), "NSD to answer", || async {
            resolver.soa_lookup(name.as_str()).await.ok().map(|_| ())
        })
        .await;
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

/// A postkeep data directory with alice@example.org, reopenable with the same master key.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    master_hex: String,
    pub store: Arc<MailStore>,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let master_hex = MasterKey::generate().to_hex().to_string();
        let store = open_store(dir.path(), &master_hex).await;
        store.add_domain(DOMAIN).await.expect("add domain");
        store.create_account(ALICE, None).await.expect("add alice");
        Self {
            dir,
            master_hex,
            store,
        }
    }

    /// The same data opened again, as a restarted server would.
    pub async fn reopen(&mut self) {
        self.store = open_store(self.dir.path(), &self.master_hex).await;
    }

    pub async fn queue(&self, settings: QueueSettings, dns: DnsSettings) -> Arc<Queue> {
        let deliverer = Arc::new(Deliverer::new(Arc::clone(&self.store), Vec::new()));
        let resolver = Resolver::new(&dns).expect("a resolver");
        Queue::open(Arc::clone(&self.store), deliverer, settings, &resolver)
            .await
            .expect("open the queue")
    }

    /// The messages in `address`'s INBOX, oldest first.
    pub async fn inbox(&self, address: &str) -> Vec<Vec<u8>> {
        let account = self
            .store
            .find_account(address)
            .await
            .expect("find account")
            .expect("account exists");
        let inbox = self
            .store
            .role_mailbox(account.id, MailboxRole::Inbox)
            .await
            .expect("inbox");
        let mut out = Vec::new();
        for entry in self
            .store
            .meta()
            .list_entries(inbox.id)
            .await
            .expect("list")
        {
            let record = self
                .store
                .meta()
                .message(&entry.message_id)
                .await
                .expect("message row")
                .expect("message exists");
            out.push(self.store.message_bytes(&record).await.expect("read"));
        }
        out
    }

    pub async fn queue_is_empty(&self) -> bool {
        self.store
            .meta()
            .queue_entries()
            .await
            .expect("queue entries")
            .is_empty()
    }
}

async fn open_store(dir: &Path, master_hex: &str) -> Arc<MailStore> {
    let hex = master_hex.to_string();
    let loader: MasterLoader = Arc::new(move || MasterKey::from_hex(&hex, "test"));
    Arc::new(
        MailStore::open_embedded(dir, KeyScope::Account, loader)
            .await
            .expect("open the store"),
    )
}

/// Settings for tests: fast retries, short lease, no delay notice (tests turn it on).
pub fn settings(remote_port: u16) -> QueueSettings {
    let mut s = QueueSettings::new("mx.example.org", &postkeep_config::Queue::default());
    s.retry_base = Duration::from_secs(1);
    s.retry_max = Duration::from_secs(4);
    s.lifetime = Duration::from_secs(3600);
    s.delay_notice = None;
    s.concurrency = 4;
    s.remote_port = remote_port;
    s.lease = Duration::from_secs(2);
    s.poll_interval = Duration::from_millis(100);
    s.connect_timeout = Duration::from_secs(5);
    s.command_timeout = Duration::from_secs(30);
    s.data_timeout = Duration::from_secs(30);
    s
}

/// A message from alice with a unique Message-ID.
pub fn message(to: &str, tag: &str) -> Vec<u8> {
    format!(
        "From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: test {tag}\r\n\
         Message-ID: <{tag}@example.org>\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello {tag}.\r\n.leading dot\r\n"
    )
    .into_bytes()
}

/// The value of the first header field `name` of a message.
pub fn header(message: &[u8], name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(message)?;
    parsed.header_raw(name).map(|v| v.trim().to_string())
}
