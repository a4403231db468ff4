// `ringledger repl`: the statement parser (valid input and each kind of bad input), and the
// command end to end with --command and with statements on stdin, against the fake server.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { statements_parse } from '../lib/cli/repl';
import { AccountFlags, TransferFlags } from '../lib/client/index';
import { FakeServer } from './client_fake_server';

const main_path = path.resolve(__dirname, '..', 'lib', 'cli', 'main.js');

describe('repl: parsing', () => {
    test('statements, objects, defaults, flags and number forms', () => {
        const statements = statements_parse(
            'create_accounts id=1 code=10 ledger=700 flags=linked|history, id=0x2 code=10 ' +
            'ledger=700;\n lookup_accounts id=1, id=2; get_account_transfers account_id=1;' +
            'create_transfers id=1_000 debit_account_id=1 credit_account_id=2 amount=10 ' +
            'ledger=700 code=10 flags=pending timeout=3');
        assert.deepEqual(statements.map((statement) => statement.operation), [
            'create_accounts', 'lookup_accounts', 'get_account_transfers', 'create_transfers']);
        const [accounts, lookups, filter, transfers] = statements;
        assert.equal(accounts!.objects.length, 2);
        assert.equal(accounts!.objects[0]!.flags, AccountFlags.linked | AccountFlags.history);
        assert.equal(accounts!.objects[1]!.id, 2n);
        assert.equal(accounts!.objects[1]!.user_data_64, 0n);
        assert.deepEqual(lookups!.objects.map((object) => object.id), [1n, 2n]);
        assert.equal(filter!.objects[0]!.limit, 8189);
        assert.equal(filter!.objects[0]!.flags, 3);
        assert.equal(transfers!.objects[0]!.id, 1000n);
        assert.equal(transfers!.objects[0]!.flags, TransferFlags.pending);
        assert.equal(transfers!.objects[0]!.timeout, 3);
        assert.deepEqual(statements_parse('query_accounts;')[0]!.objects.length, 1);
    });

    const errors: [string, RegExp][] = [
        ['create_acounts id=1;', /unknown operation "create_acounts"/],
        ['create_accounts id=1 colour=red;', /object 1: unknown field "colour"/],
        ['create_accounts id=1, id=2 ledger=x;', /object 2, ledger: "x" is not an unsigned/],
        ['create_accounts id=1 code=65536;', /code: 65536 does not fit in a u16/],
        ['create_accounts id=-1;', /id: "-1" is not an unsigned integer/],
        [`lookup_accounts id=${1n << 128n};`, /does not fit in a u128/],
        ['create_accounts id=1 id=2;', /field "id" is given twice/],
        ['create_transfers id=1 flags=pending|sideways;', /unknown flag "sideways"/],
        ['create_accounts id=1,, id=2;', /object 2: empty object/],
        ['create_accounts id;', /expected field=value, got "id"/],
        ['query_accounts limit=1, limit=2;', /takes one filter, got 2/],
        ['1234;', /expected an operation/],
    ];
    for (const [input, expected] of errors) {
        test(`rejects ${JSON.stringify(input)}`, () => {
            assert.throws(() => statements_parse(input), expected);
        });
    }
});

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
}

function repl(args: string[], input = ''): Promise<Run> {
    return new Promise((resolve) => {
        const child = child_process.execFile(process.execPath, [main_path, 'repl', ...args],
            { timeout: 20_000 }, (error, stdout, stderr) => {
                resolve({ code: error === null ? 0 : (error.code as number | null), stdout,
                    stderr });
            });
        child.stdin!.end(input);
    });
}

describe('repl: against a server', () => {
    let server: FakeServer;
    let address = '';
    before(async () => {
        server = new FakeServer();
        address = `--addresses=${await server.start()}`;
    });
    after(async () => {
        await server.close();
    });

    test('--command runs statements and prints readable results', async () => {
        const result = await repl(['--cluster=0', address, '--command=' +
            'create_accounts id=1 code=10 ledger=700, id=2 code=10 ledger=700 flags=history;' +
            'create_transfers id=1 debit_account_id=1 credit_account_id=2 amount=10 ' +
            'ledger=700 code=10, id=2 debit_account_id=1 credit_account_id=1 amount=1 ' +
            'ledger=700 code=10;' +
            'lookup_accounts id=2; lookup_transfers id=99;']);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /^account 1: created \(timestamp \d+\)$/m);
        assert.match(result.stdout, /^2 created, 0 failed$/m);
        assert.match(result.stdout, /^transfer 2: accounts_must_be_different$/m);
        assert.match(result.stdout, /^1 created, 1 failed$/m);
        assert.match(result.stdout, /^ {2}credits_posted: 10$/m);
        assert.match(result.stdout, /^ {2}flags: history$/m);
        assert.match(result.stdout, /^no transfers found$/m);
    });

    test('--command with bad input exits 1 with the error and sends nothing', async () => {
        const before_count = server.requests.length;
        const result = await repl(['--cluster=0', address,
            '--command=lookup_accounts id=1; create_accounts id=1 ledgr=1;']);
        assert.equal(result.code, 1);
        assert.match(result.stderr, /unknown field "ledgr"/);
        assert.equal(result.stdout, '');
        assert.equal(server.requests.length, before_count, 'nothing is sent on a parse error');
    });

    test('bad flags are usage errors', async () => {
        const missing = await repl(['--command=lookup_accounts id=1;']);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--cluster=<value> is required/);
        const address_bad = await repl(['--cluster=0', '--addresses=nowhere',
            '--command=lookup_accounts id=1;']);
        assert.equal(address_bad.code, 2);
        assert.match(address_bad.stderr, /invalid replica address/);
    });

    test('a cluster that does not answer times out with a clear error', async () => {
        const silent = new FakeServer();
        const port = await silent.start();
        silent.on_request = () => ({ kind: 'drop' });
        try {
            const result = await repl(['--cluster=0', `--addresses=${port}`,
                '--timeout-ms=200', '--command=lookup_accounts id=1;']);
            assert.equal(result.code, 1);
            assert.match(result.stderr, /lookup_accounts: Request timed out/);
        } finally {
            await silent.close();
        }
    });

    test('interactive: statements across lines, errors keep the session going', async () => {
        const result = await repl(['--cluster=0', address],
            'help\ncreate_accounts id=7 code=1\n ledger=9;\nlookup_accounts id=7; bogus;\n' +
            'lookup_accounts id=8;\nexit\n');
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /Statements end with ";"/);
        assert.match(result.stdout, /^account 7: created/m);
        assert.match(result.stdout, /^ {2}ledger: 9$/m);
        assert.match(result.stdout, /^error: unknown operation "bogus"/m);
        assert.match(result.stdout, /^no accounts found$/m);
    });
});
