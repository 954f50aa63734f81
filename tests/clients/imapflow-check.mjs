// Drives imapflow against a running postkeep for tests/acceptance/test_imap_clients.py.
//
//   node imapflow-check.mjs idle|qresync|move
//
// Connection settings come from the environment: PK_PORT (the imaps port), PK_CA (the server's
// certificate, trusted as the CA), PK_USER, PK_PASS. Results go to stdout as one JSON object per
// line, for the Python test to assert on; imapflow's protocol log goes to stderr, so a failing
// test shows the exchange. Exits non-zero on any error or after TIMEOUT_MS.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ImapFlow } from 'imapflow';

const TIMEOUT_MS = 60_000;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

// imapflow logs objects; `src` is 's' for server lines and 'c' for client lines.
function protocolLogger(onEntry) {
    const write = level => entry => {
        if (onEntry) onEntry(entry);
        const who = entry.src === 's' ? 'S:' : entry.src === 'c' ? 'C:' : `${level}:`;
        const extra = entry.err ? ` (${entry.err.message || entry.err})` : '';
        process.stderr.write(`${who} ${entry.msg}${extra}\n`);
    };
    return { trace: () => {}, debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

function client(options = {}, onLog) {
    const port = Number(process.env.PK_PORT);
    if (!port || !process.env.PK_CA) throw new Error('PK_PORT and PK_CA must be set');
    return new ImapFlow({
        host: 'localhost',
        port,
        secure: true,
        tls: { ca: [readFileSync(process.env.PK_CA)], minVersion: 'TLSv1.3' },
        auth: { user: process.env.PK_USER, pass: process.env.PK_PASS },
        logger: protocolLogger(onLog),
        disableAutoIdle: true,
        ...options,
    });
}

async function messageIds(c, range, options) {
    const out = {};
    for await (const msg of c.fetch(range, { uid: true, envelope: true }, options)) {
        out[msg.uid] = msg.envelope.messageId;
    }
    return out;
}

// Reports `idling` once the server has answered IDLE with "+", then the first `exists` event
// (the Python side delivers a message over SMTP in between) and logs out.
async function idle() {
    let c;
    const idling = new Promise(resolve => {
        c = client({}, entry => {
            if (/Initiated IDLE/.test(entry.msg || '')) resolve();
        });
    });
    await c.connect();
    const box = await c.mailboxOpen('INBOX');
    const exists = new Promise(resolve => c.on('exists', resolve));
    const idleDone = c.idle();
    await idling;
    emit({ event: 'idling', exists: box.exists });
    const event = await exists;
    emit({ event: 'exists', count: event.count, prevCount: event.prevCount });
    await c.logout();
    await idleDone.catch(() => {});
}

// QRESYNC round trip (RFC 7162): remember UIDVALIDITY and HIGHESTMODSEQ, let a second client
// flag one message and expunge another (UIDs from stdin: "<flag-uid> <expunge-uid>"), then
// reconnect with SELECT (QRESYNC (...)) and report what was VANISHED (EARLIER) and which
// flags changed, then what a UID FETCH 1:* (CHANGEDSINCE ... VANISHED) returns.
async function qresync() {
    const first = client({ qresync: true });
    await first.connect();
    const before = await first.mailboxOpen('INBOX');
    const known = { uidValidity: String(before.uidValidity), highestModseq: String(before.highestModseq) };
    await first.logout();
    emit({ event: 'state', ...known, enabled: [...first.enabled] });

    const [flagUid, expungeUid] = (await readLine()).trim().split(/\s+/);
    const other = client();
    await other.connect();
    await other.mailboxOpen('INBOX');
    await other.messageFlagsAdd(flagUid, ['\\Flagged'], { uid: true });
    await other.messageDelete(expungeUid, { uid: true });
    await other.logout();

    const vanished = [];
    const flags = [];
    const again = client({
        qresync: true,
        expungeHandler: payload => vanished.push({ uid: payload.uid, earlier: payload.earlier, vanished: payload.vanished }),
    });
    again.on('flags', event => flags.push({ uid: event.uid, flags: [...event.flags], modseq: String(event.modseq) }));
    await again.connect();
    const after = await again.mailboxOpen('INBOX', { uidValidity: before.uidValidity, changedSince: before.highestModseq });
    const vanishedOnSelect = vanished.splice(0);
    // With QRESYNC enabled imapflow adds the VANISHED modifier (RFC 7162 §3.2.6).
    const changed = [];
    for await (const msg of again.fetch('1:*', { uid: true, flags: true }, { uid: true, changedSince: before.highestModseq })) {
        changed.push({ uid: msg.uid, flags: [...msg.flags], modseq: String(msg.modseq) });
    }
    await again.logout();
    emit({
        event: 'resynced',
        qresync: Boolean(after.qresync),
        uidValidity: String(after.uidValidity),
        highestModseq: String(after.highestModseq),
        exists: after.exists,
        vanishedOnSelect,
        vanishedOnFetch: vanished,
        flags,
        changed,
    });
}

// MOVE (RFC 6851) with the COPYUID map (RFC 4315): Message-IDs by UID before and after.
async function move() {
    const c = client();
    await c.connect();
    await c.mailboxOpen('INBOX');
    const before = await messageIds(c, '1:*', { uid: true });
    const uids = Object.keys(before).map(Number).sort((a, b) => a - b);
    const moving = uids.slice(0, 2).join(',');
    const result = await c.messageMove(moving, 'Archive', { uid: true });
    const left = await messageIds(c, '1:*', { uid: true });
    await c.mailboxOpen('Archive');
    const archived = await messageIds(c, '1:*', { uid: true });
    await c.logout();
    emit({
        event: 'moved',
        capabilities: [...c.capabilities.keys()],
        before,
        moved: moving.split(',').map(Number),
        uidMap: result ? Object.fromEntries([...(result.uidMap || new Map())].map(([k, v]) => [String(k), v])) : null,
        left,
        archived,
    });
}

let stdinLines;
function readLine() {
    if (!stdinLines) {
        const rl = createInterface({ input: process.stdin });
        const queue = [];
        const waiting = [];
        rl.on('line', line => (waiting.length ? waiting.shift()(line) : queue.push(line)));
        stdinLines = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise(r => waiting.push(r)));
    }
    return stdinLines();
}

const scenarios = { idle, qresync, move };
const name = process.argv[2];
if (!scenarios[name]) {
    process.stderr.write(`usage: node imapflow-check.mjs ${Object.keys(scenarios).join('|')}\n`);
    process.exit(2);
}
const timer = setTimeout(() => {
    process.stderr.write(`${name}: timed out after ${TIMEOUT_MS} ms\n`);
    process.exit(3);
}, TIMEOUT_MS);
try {
    await scenarios[name]();
    clearTimeout(timer);
    process.exit(0);
} catch (err) {
    process.stderr.write(`${name} failed: ${err.stack || err}\n${err.response ? 'server said: ' + err.response + '\n' : ''}`);
    process.exit(1);
}
