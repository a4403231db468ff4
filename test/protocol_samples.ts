// Test helpers shared by the header and protocol fuzz tests (not a test file itself): a seeded
// PRNG, a builder of random VALID messages for every command, and a slow reference validator
// written independently of lib/vsr/validate.ts (BigInt field reads by name) to serve as oracle.
import assert from 'node:assert/strict';

import { checksum_bigint } from '../lib/vsr/checksum';
import { header_size, message_size_max } from '../lib/vsr/constants';
import { HeaderView, seal } from '../lib/vsr/header';
import { Command, command_layout, command_names, frame_layout } from '../lib/vsr/header_layout';

/** mulberry32: small, fast, seeded. */
export class Random {
    private state: number;
    constructor(seed: number) { this.state = seed >>> 0; }
    u32(): number {
        this.state = (this.state + 0x6D2B79F5) >>> 0;
        let t = this.state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return (t ^ (t >>> 14)) >>> 0;
    }
    /** Uniform integer in [0, bound). */
    int(bound: number): number { return Math.floor((this.u32() / 0x1_0000_0000) * bound); }
    chance(probability: number): boolean { return this.u32() / 0x1_0000_0000 < probability; }
    bigint(bits: number): bigint {
        let value = 0n;
        for (let index = 0; index < bits; index += 32) value = (value << 32n) | BigInt(this.u32());
        return value & ((1n << BigInt(bits)) - 1n);
    }
    /** Non-zero, often small, sometimes huge. */
    nonzero(bits: number): bigint {
        const value = this.chance(0.5) ? BigInt(1 + this.int(1000)) : this.bigint(bits);
        return value === 0n ? 1n : value;
    }
    fill(bytes: Uint8Array, start: number, end: number): void {
        for (let index = start; index < end; index++) bytes[index] = this.u32() & 0xFF;
    }
}

export const cluster_test = 0x1234_5678_9abc_def0_1122_3344_5566_7788n;
const client_operations = [140, 141, 142, 143, 144, 145, 146, 147];

// Body size per command, drawn so the message stays valid.
function body_size_for(random: Random, view: HeaderView, command: number): number {
    switch (command) {
        case Command.request:
            if (view.get('operation') === 2) return random.chance(0.8) ? 256 : 0;
            return random.int(4) * 16 * random.int(8);
        case Command.reply: return view.get('operation') === 2 ? 64 : 16 * random.int(40);
        case Command.ping: return Number(view.get('release_count')) * 4;
        case Command.do_view_change:
        case Command.start_view: return header_size * (1 + random.int(11));
        case Command.headers: return header_size * (1 + random.int(4));
        case Command.request_blocks: return 32 * (1 + random.int(4));
        case Command.prepare:
        case Command.block: return random.int(600);
        default: return 0;
    }
}

/** Per replica command, its op-number fields: a peer's are below 2^53 (validate.ts). */
const op_names: Readonly<Record<string, readonly string[]>> = {
    ping: ['checkpoint_op'], prepare: ['op', 'commit'], prepare_ok: ['op', 'commit_min'],
    // The checkpoint's root address is no op, but a state sync reads it: a safe integer too.
    commit: ['checkpoint_op', 'commit', 'checkpoint_root_address'],
    do_view_change: ['op', 'commit', 'checkpoint_op', 'op_acknowledged_max'],
    start_view: ['op', 'commit_max', 'checkpoint_op'], request_headers: ['op_min', 'op_max'],
    request_prepare: ['prepare_op'], request_reply: ['reply_op'],
};
const op_limit = 2n ** 53n;

/** Brings a valid sample's op fields below 2^53 (keeping their order: each was drawn below). */
function op_fields_constrain(view: HeaderView, name: string): void {
    for (const field of op_names[name] ?? []) {
        const value = BigInt(view.get(field));
        if (value >= op_limit) view.set(field, value % op_limit);
    }
}

// Field constraints of each command, applied after every field got a random value.
function constrain(random: Random, view: HeaderView, command: number): void {
    const set = (name: string, value: number | bigint): void => view.set(name, value);
    switch (command) {
        case Command.request: {
            set('replica', 0); set('timestamp', 0);
            const register = random.chance(0.3);
            set('operation', register ? 2 : client_operations[random.int(8)]!);
            if (register) { set('parent', 0); set('session', 0); set('request', 0); }
            else { set('session', random.nonzero(64)); set('request', random.nonzero(32)); }
            return set('client', random.nonzero(128));
        }
        case Command.reply: {
            const register = random.chance(0.3);
            set('operation', register ? 2 : client_operations[random.int(8)]!);
            if (register) set('request', 0);
            const commit = random.nonzero(64);
            set('commit', commit); set('op', commit);
            set('timestamp', random.nonzero(64)); set('client', random.nonzero(128));
            return;
        }
        case Command.ping_client:
            set('replica', 0); set('view', 0); set('client', random.nonzero(128));
            set('ping_timestamp_monotonic', random.nonzero(64));
            return;
        case Command.pong_client: set('ping_timestamp_monotonic', random.nonzero(64)); return;
        case Command.eviction:
            set('client', random.nonzero(128)); set('reason', 1 + random.int(8));
            return;
        case Command.ping:
            set('release_count', random.int(9));
            set('ping_timestamp_monotonic', random.nonzero(64));
            return;
        case Command.pong:
            set('ping_timestamp_monotonic', random.nonzero(64));
            set('pong_timestamp_wall', random.nonzero(64));
            return;
        case Command.prepare: {
            set('operation', random.chance(0.5) ? 128 + random.int(128) : 2 + random.int(5));
            const op = random.nonzero(52) + 1n;
            set('op', op); set('commit', op - 1n - (random.chance(0.5) ? 0n : (op - 1n) / 2n));
            set('timestamp', random.nonzero(64)); set('client', random.nonzero(128));
            return;
        }
        case Command.prepare_ok: set('operation', 1 + random.int(255)); return;
        case Command.commit: {
            const commit = random.bigint(53);
            set('commit', commit); set('checkpoint_op', commit / BigInt(1 + random.int(5)));
            set('timestamp_monotonic', random.nonzero(64));
            return;
        }
        case Command.do_view_change: {
            const op = random.bigint(53);
            set('op', op); set('commit', op / BigInt(1 + random.int(5)));
            set('log_view', random.int(Number(view.view) + 1));
            set('head_uncertain', random.int(2));
            return;
        }
        case Command.start_view: {
            const op = random.bigint(53);
            set('op', op); set('commit_max', op / BigInt(1 + random.int(5)));
            return;
        }
        case Command.request_headers: {
            const op_max = random.bigint(53);
            set('op_max', op_max); set('op_min', op_max / BigInt(1 + random.int(5)));
            return;
        }
        case Command.request_reply: return request_reply_constrain(random, view);
        case Command.block: set('address', random.nonzero(64)); return;
        default: return;
    }
}

/** request_reply names a client (non-zero) and the op of its reply (a committed op: at least 1). */
function request_reply_constrain(random: Random, view: HeaderView): void {
    view.set('reply_client', random.nonzero(128));
    view.set('reply_op', random.nonzero(53));
}

export const valid_commands: readonly number[] = command_names
    .map((_, code) => code)
    .filter((code) => code !== 0 && !command_names[code]!.startsWith('deprecated'));

/**
 * Writes a random valid, sealed message of `command` at bytes[0]; returns its size. Field values
 * are random wherever the rules allow.
 */
export function build_valid(random: Random, bytes: Uint8Array, command: number): number {
    const view = new HeaderView().attach(bytes, 0);
    bytes.fill(0, 0, header_size);
    view.command = command;
    for (const field of [...frame_layout, ...command_layout[command]!]) {
        if (field.type === 'reserved' || field.name === 'command') continue;
        if (field.type === 'bytes') random.fill(bytes, field.offset, field.offset + field.size);
        else view.set_field(field, random.bigint(field.size * 8));
    }
    view.set('cluster', cluster_test);
    view.protocol = 0;
    view.release = Number(random.nonzero(32));
    view.replica = random.int(6);
    constrain(random, view, command);
    op_fields_constrain(view, command_names[command]!);
    const size = header_size + body_size_for(random, view, command);
    assert.ok(size <= message_size_max && size <= bytes.length);
    view.size = size;
    if (command === Command.request && view.get('operation') === 2) bytes.fill(0, 256, size);
    else random.fill(bytes, header_size, size);
    if (command === Command.reply && view.get('operation') === 2) {
        bytes.fill(0, 256, 320);
        view.set_u32(256, 1 + random.int(1048320));
    }
    seal(view);
    return size;
}

/** Independent oracle: whether a message (available bytes at bytes[0]) is valid. Slow. */
export function reference_valid(bytes: Uint8Array, available: number): boolean {
    if (available < header_size || bytes.length < header_size) return false;
    const view = new HeaderView().attach(bytes, 0);
    const header = bytes.subarray(0, header_size);
    if (checksum_bigint(header.subarray(16)) !== view.u128_bigint(0)) return false;
    const command = view.command;
    const name = command_names[command];
    if (name === undefined || command === 0 || name.startsWith('deprecated')) return false;
    const size = view.size;
    if (size < header_size || size > message_size_max || size > available) return false;
    if (checksum_bigint(bytes.subarray(header_size, size)) !== view.u128_bigint(32)) return false;
    if (view.get('cluster') !== cluster_test || view.protocol !== 0 || view.release === 0) {
        return false;
    }
    for (const field of [...frame_layout, ...command_layout[command]!]) {
        if (field.type === 'reserved' && view.get_field(field) !== 0n) return false;
    }
    return reference_rules(view, name, size - header_size);
}

function reference_rules(view: HeaderView, name: string, body: number): boolean {
    const get = (field: string): bigint => BigInt(view.get(field));
    const replica_ok = view.replica < 6;
    const operation = name === 'ping' || !has_field(view, 'operation') ? -1n : get('operation');
    switch (name) {
        case 'request':
            if (view.replica !== 0 || get('client') === 0n || get('timestamp') !== 0n) return false;
            if (operation === 2n) {
                return get('parent') === 0n && get('session') === 0n && get('request') === 0n &&
                    (body === 0 || body === 256);
            }
            return operation >= 128n && get('session') !== 0n && get('request') !== 0n;
        case 'reply':
            if (!replica_ok || get('client') === 0n || get('commit') === 0n) return false;
            if (get('op') !== get('commit') || get('timestamp') === 0n) return false;
            if (operation === 2n) return body === 64 && get('request') === 0n;
            return operation >= 128n;
        case 'ping_client':
            return body === 0 && view.replica === 0 && view.view === 0 && get('client') !== 0n &&
                get('ping_timestamp_monotonic') !== 0n;
        case 'pong_client':
            return body === 0 && replica_ok && get('ping_timestamp_monotonic') !== 0n;
        case 'eviction':
            return body === 0 && replica_ok && get('client') !== 0n && get('reason') >= 1n &&
                get('reason') <= 8n;
        default: return replica_ok && reference_replica_rules(view, name, body, operation, get);
    }
}

function has_field(view: HeaderView, name: string): boolean {
    return command_layout[view.command]!.some((field) => field.name === name);
}

function reference_replica_rules(
    view: HeaderView, name: string, body: number, operation: bigint,
    get: (field: string) => bigint,
): boolean {
    const whole = (element: number, max: number): boolean =>
        body > 0 && body % element === 0 && body / element <= max;
    if ((op_names[name] ?? []).some((field) => get(field) >= op_limit)) return false;
    switch (name) {
        case 'ping':
            return body === Number(get('release_count')) * 4 &&
                get('ping_timestamp_monotonic') !== 0n;
        case 'pong':
            return body === 0 && get('ping_timestamp_monotonic') !== 0n &&
                get('pong_timestamp_wall') !== 0n;
        case 'prepare':
            if (operation === 0n) return false;
            if (operation === 1n) return get('op') === 0n;
            if (get('op') === 0n || get('commit') >= get('op') || get('timestamp') === 0n) {
                return false;
            }
            return !((operation >= 128n || operation === 2n) && get('client') === 0n);
        case 'prepare_ok': return body === 0 && operation !== 0n;
        case 'commit':
            return body === 0 && get('checkpoint_op') <= get('commit') &&
                get('timestamp_monotonic') !== 0n;
        case 'start_view_change':
        case 'request_start_view':
        case 'request_prepare': return body === 0;
        case 'do_view_change':
            return get('commit') <= get('op') && get('log_view') <= BigInt(view.view) &&
                get('head_uncertain') <= 1n &&
                ((body === 0 && get('head_uncertain') === 1n) || whole(256, 11));
        case 'start_view': return get('commit_max') <= get('op') && whole(256, 11);
        case 'request_headers': return body === 0 && get('op_min') <= get('op_max');
        case 'request_reply':
            return body === 0 && get('reply_client') !== 0n && get('reply_op') !== 0n;
        case 'headers': return whole(256, 64);
        case 'request_blocks': return whole(32, 4);
        case 'block': return get('address') !== 0n;
        default: assert.fail(`no reference rule for ${name}`);
    }
}
