// `ringledger repl --cluster=<id> --addresses=<...> [--command=<statements>]`: statements in
// TigerBeetle's REPL syntax, run through our client:
//
//   create_accounts id=1 code=10 ledger=700 flags=history, id=2 code=10 ledger=700;
//   create_transfers id=1 debit_account_id=1 credit_account_id=2 amount=10 ledger=700 code=10;
//   lookup_accounts id=1, id=2;
//   get_account_transfers account_id=1 flags=debits|credits limit=10;
//   query_accounts ledger=700 limit=10;
//
// A statement is an operation, then objects separated by commas, each a list of field=value,
// ended by ';'. Unset fields are zero (filters default to limit=8189 and, for account filters,
// flags=debits|credits). Numbers are decimal or 0x-hex; flags are names joined by '|'. Bad input
// gets an error that names the statement, object and field, and nothing is sent.
import readline from 'node:readline';

import { createClient } from '../client/index';
import type { Client } from '../client/index';
import {
    AccountFilterFlags, AccountFlags, CreateAccountStatus, CreateTransferStatus,
    QueryFilterFlags, TransferFlags,
} from '../client/index';
import { args_parse, flag_u128 } from './args';
import type { CliCommand } from './command';
import { UsageError } from './command';

type FieldKind = 'u128' | 'u64' | 'u32' | 'u16' | 'flags';
type FieldSpec = readonly [name: string, kind: FieldKind];

const account_fields: readonly FieldSpec[] = [
    ['id', 'u128'], ['debits_pending', 'u128'], ['debits_posted', 'u128'],
    ['credits_pending', 'u128'], ['credits_posted', 'u128'], ['user_data_128', 'u128'],
    ['user_data_64', 'u64'], ['user_data_32', 'u32'], ['reserved', 'u32'], ['ledger', 'u32'],
    ['code', 'u16'], ['flags', 'flags'], ['timestamp', 'u64'],
];
const transfer_fields: readonly FieldSpec[] = [
    ['id', 'u128'], ['debit_account_id', 'u128'], ['credit_account_id', 'u128'],
    ['amount', 'u128'], ['pending_id', 'u128'], ['user_data_128', 'u128'],
    ['user_data_64', 'u64'], ['user_data_32', 'u32'], ['timeout', 'u32'], ['ledger', 'u32'],
    ['code', 'u16'], ['flags', 'flags'], ['timestamp', 'u64'],
];
const account_filter_fields: readonly FieldSpec[] = [
    ['account_id', 'u128'], ['user_data_128', 'u128'], ['user_data_64', 'u64'],
    ['user_data_32', 'u32'], ['code', 'u16'], ['timestamp_min', 'u64'],
    ['timestamp_max', 'u64'], ['limit', 'u32'], ['flags', 'flags'],
];
const query_filter_fields: readonly FieldSpec[] = [
    ['user_data_128', 'u128'], ['user_data_64', 'u64'], ['user_data_32', 'u32'],
    ['ledger', 'u32'], ['code', 'u16'], ['timestamp_min', 'u64'], ['timestamp_max', 'u64'],
    ['limit', 'u32'], ['flags', 'flags'],
];

type Shape = 'list' | 'ids' | 'filter';
interface OperationSyntax {
    readonly fields: readonly FieldSpec[];
    readonly flags: Record<string, string | number>;
    readonly shape: Shape;
    readonly defaults: Record<string, number>;
}

const filter_defaults = { limit: 8189 };
const operations: Record<string, OperationSyntax> = {
    create_accounts: { fields: account_fields, flags: AccountFlags, shape: 'list', defaults: {} },
    create_transfers: {
        fields: transfer_fields, flags: TransferFlags, shape: 'list', defaults: {},
    },
    lookup_accounts: { fields: [['id', 'u128']], flags: {}, shape: 'ids', defaults: {} },
    lookup_transfers: { fields: [['id', 'u128']], flags: {}, shape: 'ids', defaults: {} },
    get_account_transfers: {
        fields: account_filter_fields, flags: AccountFilterFlags, shape: 'filter',
        defaults: { ...filter_defaults, flags: AccountFilterFlags.debits |
            AccountFilterFlags.credits },
    },
    get_account_balances: {
        fields: account_filter_fields, flags: AccountFilterFlags, shape: 'filter',
        defaults: { ...filter_defaults, flags: AccountFilterFlags.debits |
            AccountFilterFlags.credits },
    },
    query_accounts: {
        fields: query_filter_fields, flags: QueryFilterFlags, shape: 'filter',
        defaults: filter_defaults,
    },
    query_transfers: {
        fields: query_filter_fields, flags: QueryFilterFlags, shape: 'filter',
        defaults: filter_defaults,
    },
};

export class ReplError extends Error {}

export interface Statement {
    readonly operation: string;
    readonly objects: Record<string, bigint | number>[];
}

const u64_max = (1n << 64n) - 1n;
const u128_max = (1n << 128n) - 1n;
const kind_max: Record<Exclude<FieldKind, 'flags'>, bigint> = {
    u128: u128_max, u64: u64_max, u32: 0xFFFF_FFFFn, u16: 0xFFFFn,
};

/** Splits input into statements at ';' (the last may omit it) and parses each. */
export function statements_parse(text: string): Statement[] {
    const parts = text.split(';');
    const statements: Statement[] = [];
    for (const part of parts) {
        if (part.trim() === '') continue;
        statements.push(statement_parse(part));
    }
    return statements;
}

export function statement_parse(text: string): Statement {
    const trimmed = text.trim();
    const match = /^([A-Za-z_]+)\s*([\s\S]*)$/.exec(trimmed);
    if (match === null) throw new ReplError(`expected an operation, got "${trimmed}"`);
    const operation = match[1]!;
    const syntax = operations[operation];
    if (syntax === undefined) {
        throw new ReplError(`unknown operation "${operation}"; operations: ` +
            Object.keys(operations).join(', '));
    }
    const body = match[2]!.trim();
    const object_texts = body === '' ? [] : body.split(',');
    if (syntax.shape === 'filter' && object_texts.length > 1) {
        throw new ReplError(`${operation} takes one filter, got ${object_texts.length}`);
    }
    const objects = object_texts.map((object_text, index) =>
        object_parse(operation, syntax, object_text, index));
    if (syntax.shape === 'filter' && objects.length === 0) {
        objects.push(object_parse(operation, syntax, '', 0));
    }
    return { operation, objects };
}

function object_parse(
    operation: string, syntax: OperationSyntax, text: string, index: number,
): Record<string, bigint | number> {
    const where = `${operation}, object ${index + 1}`;
    const object: Record<string, bigint | number> = {};
    for (const [name, kind] of syntax.fields) {
        const fallback = syntax.defaults[name] ?? 0;
        object[name] = kind === 'u128' || kind === 'u64' ? BigInt(fallback) : fallback;
    }
    const pairs = text.trim().split(/\s+/).filter((pair) => pair !== '');
    if (pairs.length === 0 && syntax.shape !== 'filter') {
        throw new ReplError(`${where}: empty object (a stray ','?)`);
    }
    const seen = new Set<string>();
    for (const pair of pairs) {
        const equals = pair.indexOf('=');
        if (equals <= 0 || equals === pair.length - 1) {
            throw new ReplError(`${where}: expected field=value, got "${pair}"`);
        }
        const name = pair.slice(0, equals);
        const value_text = pair.slice(equals + 1);
        const spec = syntax.fields.find(([field]) => field === name);
        if (spec === undefined) {
            throw new ReplError(`${where}: unknown field "${name}"; fields: ` +
                syntax.fields.map(([field]) => field).join(', '));
        }
        if (seen.has(name)) throw new ReplError(`${where}: field "${name}" is given twice`);
        seen.add(name);
        object[name] = value_parse(`${where}, ${name}`, spec[1], value_text, syntax.flags);
    }
    return object;
}

function value_parse(
    where: string, kind: FieldKind, text: string, flags: Record<string, string | number>,
): bigint | number {
    if (kind === 'flags') return flags_parse(where, text, flags);
    let value: bigint;
    if (!/^(0x[0-9a-fA-F_]+|[0-9_]+)$/.test(text)) {
        throw new ReplError(`${where}: "${text}" is not an unsigned integer`);
    }
    try {
        value = BigInt(text.replaceAll('_', ''));
    } catch {
        throw new ReplError(`${where}: "${text}" is not an unsigned integer`);
    }
    if (value > kind_max[kind]) throw new ReplError(`${where}: ${text} does not fit in a ${kind}`);
    return kind === 'u128' || kind === 'u64' ? value : Number(value);
}

function flags_parse(where: string, text: string, flags: Record<string, string | number>): number {
    if (/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) {
        const value = Number(text);
        if (value > 0xFFFF_FFFF) throw new ReplError(`${where}: ${text} does not fit in a u32`);
        return value;
    }
    let value = 0;
    for (const name of text.split('|')) {
        const bit = flags[name];
        if (typeof bit !== 'number' || name === 'none' && text !== 'none') {
            const names = Object.keys(flags).filter((key) => Number.isNaN(Number(key)));
            throw new ReplError(`${where}: unknown flag "${name}"; flags: ${names.join(', ')}`);
        }
        value |= bit;
    }
    return value;
}

/** Runs a parsed statement and renders its results as text. */
export async function statement_execute(client: Client, statement: Statement): Promise<string> {
    const objects = statement.objects;
    switch (statement.operation) {
        case 'create_accounts': {
            const results = await client.createAccounts(objects as never);
            return create_results_text('account', objects, results, CreateAccountStatus);
        }
        case 'create_transfers': {
            const results = await client.createTransfers(objects as never);
            return create_results_text('transfer', objects, results, CreateTransferStatus);
        }
        case 'lookup_accounts':
            return objects_text(await client.lookupAccounts(objects.map((o) => o.id as bigint)),
                AccountFlags, 'no accounts found');
        case 'lookup_transfers':
            return objects_text(await client.lookupTransfers(objects.map((o) => o.id as bigint)),
                TransferFlags, 'no transfers found');
        case 'get_account_transfers':
            return objects_text(await client.getAccountTransfers(objects[0] as never),
                TransferFlags, 'no transfers found');
        case 'get_account_balances':
            return objects_text(await client.getAccountBalances(objects[0] as never), {},
                'no balances found');
        case 'query_accounts':
            return objects_text(await client.queryAccounts(objects[0] as never), AccountFlags,
                'no accounts found');
        case 'query_transfers':
            return objects_text(await client.queryTransfers(objects[0] as never), TransferFlags,
                'no transfers found');
        default:
            throw new ReplError(`unknown operation "${statement.operation}"`);
    }
}

function create_results_text(
    noun: string, objects: Record<string, bigint | number>[],
    results: { status: number, timestamp: bigint }[], statuses: Record<string, string | number>,
): string {
    if (results.length === 0) return `no ${noun}s given`;
    const lines: string[] = [];
    let created = 0;
    results.forEach((result, index) => {
        const name = statuses[result.status] ?? `status ${result.status}`;
        if (name === 'created') created += 1;
        lines.push(`${noun} ${objects[index]!.id}: ${name}` +
            (name === 'created' ? ` (timestamp ${result.timestamp})` : ''));
    });
    const failed = results.length - created;
    lines.push(`${created} created, ${failed} failed`);
    return lines.join('\n');
}

function objects_text(
    objects: object[], flags: Record<string, string | number>, empty: string,
): string {
    if (objects.length === 0) return empty;
    return objects.map((object) => {
        const lines = Object.entries(object).map(([key, value]) => {
            const text = key === 'flags' ? flags_text(value as number, flags) : String(value);
            return `  ${key}: ${text}`;
        });
        return `{\n${lines.join('\n')}\n}`;
    }).join('\n');
}

function flags_text(value: number, flags: Record<string, string | number>): string {
    const names: string[] = [];
    for (const [name, bit] of Object.entries(flags)) {
        if (typeof bit === 'number' && bit !== 0 && (value & bit) === bit) names.push(name);
    }
    return names.length === 0 ? (value === 0 ? 'none' : String(value)) : names.join('|');
}

const help_text = [
    'Statements end with ";". Operations:',
    ...Object.keys(operations).map((name) => `  ${name}`),
    'Examples:',
    '  create_accounts id=1 code=10 ledger=700, id=2 code=10 ledger=700;',
    '  create_transfers id=1 debit_account_id=1 credit_account_id=2 amount=10 ledger=700 ' +
        'code=10;',
    '  lookup_accounts id=1, id=2;',
    '  get_account_transfers account_id=1 flags=debits|credits limit=10;',
    'Type "exit" or press Ctrl-D to leave.',
].join('\n');

const usage = 'ringledger repl --cluster=<id> --addresses=<port | host:port>[,...] ' +
    '[--command=<statements>] [--timeout-ms=<n>]';

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['cluster', 'addresses', 'command', 'timeout-ms']);
    if (parsed.positional.length > 0) throw new UsageError('no positional arguments expected');
    const cluster = flag_u128(parsed, 'cluster');
    const addresses = parsed.flags.get('addresses');
    if (addresses === undefined || addresses === '') {
        throw new UsageError('--addresses=<port | host:port>[,...] is required');
    }
    const timeout_text = parsed.flags.get('timeout-ms') ?? '10000';
    const timeout_ms = Number(timeout_text);
    if (!Number.isSafeInteger(timeout_ms) || timeout_ms < 0) {
        throw new UsageError(`--timeout-ms must be a whole number, not "${timeout_text}"`);
    }
    // --command is parsed whole before connecting: bad input sends nothing at all.
    const command = parsed.flags.get('command');
    let statements: Statement[] | null = null;
    if (command !== undefined) {
        try {
            statements = statements_parse(command);
        } catch (error) {
            process.stderr.write(`error: ${(error as Error).message}\n`);
            return 1;
        }
        if (statements.length === 0) {
            process.stderr.write('error: --command has no statements\n');
            return 1;
        }
    }
    let client: Client;
    try {
        client = createClient({ cluster_id: cluster, replica_addresses: addresses.split(','),
            request_timeout_ms: timeout_ms });
    } catch (error) {
        throw new UsageError((error as Error).message);
    }
    try {
        if (statements !== null) return await run_command(client, statements);
        return await run_interactive(client);
    } finally {
        client.destroy();
    }
}

async function run_command(client: Client, statements: Statement[]): Promise<number> {
    for (const statement of statements) {
        try {
            process.stdout.write(`${await statement_execute(client, statement)}\n`);
        } catch (error) {
            process.stderr.write(`error: ${statement.operation}: ${(error as Error).message}\n`);
            return 1;
        }
    }
    return 0;
}

async function run_interactive(client: Client): Promise<number> {
    const terminal = process.stdin.isTTY === true;
    const lines = readline.createInterface({ input: process.stdin, output: process.stdout,
        terminal });
    process.stdout.write('ringledger repl: statements end with ";", "help" for help\n');
    let buffer = '';
    const prompt = (): void => {
        if (terminal) {
            lines.setPrompt(buffer === '' ? '> ' : '... ');
            lines.prompt();
        }
    };
    prompt();
    for await (const line of lines) {
        const trimmed = line.trim();
        if (buffer === '' && (trimmed === 'exit' || trimmed === 'quit')) break;
        if (buffer === '' && trimmed === 'help') {
            process.stdout.write(`${help_text}\n`);
            prompt();
            continue;
        }
        buffer += `${line}\n`;
        let end = buffer.indexOf(';');
        while (end !== -1) {
            const text = buffer.slice(0, end);
            buffer = buffer.slice(end + 1);
            await interactive_statement(client, text);
            end = buffer.indexOf(';');
        }
        if (buffer.trim() === '') buffer = '';
        prompt();
    }
    lines.close();
    return 0;
}

async function interactive_statement(client: Client, text: string): Promise<void> {
    if (text.trim() === '') return;
    try {
        process.stdout.write(`${await statement_execute(client, statement_parse(text))}\n`);
    } catch (error) {
        process.stdout.write(`error: ${(error as Error).message}\n`);
    }
}

export const command_repl: CliCommand = {
    summary: 'run statements (create_accounts, lookup_accounts, ...) against a cluster',
    usage,
    run,
};
