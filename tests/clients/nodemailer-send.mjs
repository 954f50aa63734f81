// Sends one message with nodemailer through a running postkeep for
// tests/acceptance/test_submission.py.
//
//   node nodemailer-send.mjs
//
// Settings come from the environment: PK_PORT, PK_SECURE ("1" = implicit TLS on submissions,
// otherwise STARTTLS is required), PK_CA (the server's certificate, trusted as the CA),
// PK_USER, PK_PASS, PK_FROM, PK_TO (comma-separated), PK_SUBJECT, PK_TEXT. The outcome goes to
// stdout as one JSON object: {"ok": true, "accepted": [...], "rejected": [...], "response": "..."}
// or {"ok": false, "code": ..., "responseCode": ..., "response": "..."}; nodemailer's SMTP log
// goes to stderr. Exits non-zero only on a crash or after TIMEOUT_MS.
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';

const TIMEOUT_MS = 60_000;
const env = process.env;

setTimeout(() => {
    process.stderr.write(`nodemailer-send: no result after ${TIMEOUT_MS} ms\n`);
    process.exit(2);
}, TIMEOUT_MS).unref();

const transport = nodemailer.createTransport({
    host: '127.0.0.1',
    port: Number(env.PK_PORT),
    secure: env.PK_SECURE === '1',
    requireTLS: env.PK_SECURE !== '1',
    auth: { user: env.PK_USER, pass: env.PK_PASS },
    tls: { ca: [readFileSync(env.PK_CA)], servername: 'localhost' },
    name: 'client.test',
    logger: {
        trace: () => {},
        debug: (...args) => process.stderr.write(args.join(' ') + '\n'),
        info: (...args) => process.stderr.write(args.join(' ') + '\n'),
        warn: (...args) => process.stderr.write(args.join(' ') + '\n'),
        error: (...args) => process.stderr.write(args.join(' ') + '\n'),
        fatal: (...args) => process.stderr.write(args.join(' ') + '\n'),
    },
    debug: true,
});

try {
    const info = await transport.sendMail({
        from: env.PK_FROM,
        to: env.PK_TO.split(','),
        subject: env.PK_SUBJECT,
        text: env.PK_TEXT,
    });
    process.stdout.write(JSON.stringify({
        ok: true, accepted: info.accepted, rejected: info.rejected, response: info.response,
    }) + '\n');
} catch (err) {
    process.stdout.write(JSON.stringify({
        ok: false, code: err.code ?? null, responseCode: err.responseCode ?? null,
        response: err.response ?? String(err.message),
    }) + '\n');
} finally {
    transport.close();
}
