// Argument parsing for the subcommands: `--name=value` flags and positional arguments, checked
// against the flags a command accepts so that a typo is an error, not silently ignored.
import type { Capacity } from '../server/config';
import {
    accounts_max_default, clients_max_default, transfers_max_default,
} from '../server/config';
import { UsageError } from './command';

export interface ParsedArgs {
    flags: Map<string, string>;
    positional: string[];
}

export function args_parse(args: readonly string[], allowed: readonly string[]): ParsedArgs {
    const flags = new Map<string, string>();
    const positional: string[] = [];
    for (const arg of args) {
        if (!arg.startsWith('--')) {
            positional.push(arg);
            continue;
        }
        const equals = arg.indexOf('=');
        const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
        const value = equals === -1 ? '' : arg.slice(equals + 1);
        if (!allowed.includes(name)) throw new UsageError(`unknown flag --${name}`);
        if (flags.has(name)) throw new UsageError(`--${name} is given twice`);
        flags.set(name, value);
    }
    return { flags, positional };
}

export function flag_required(parsed: ParsedArgs, name: string): string {
    const value = parsed.flags.get(name);
    if (value === undefined || value === '') throw new UsageError(`--${name}=<value> is required`);
    return value;
}

/** An integer flag in [min, max], or `fallback` when absent. */
export function flag_integer(parsed: ParsedArgs, name: string, fallback: number, min: number,
    max: number): number {
    const text = parsed.flags.get(name);
    if (text === undefined) return fallback;
    const value = Number(text.replaceAll('_', ''));
    if (text === '' || !Number.isSafeInteger(value) || value < min || value > max) {
        throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not "${text}"`);
    }
    return value;
}

/** A u128 flag (the cluster id), decimal or 0x-hex. */
export function flag_u128(parsed: ParsedArgs, name: string): bigint {
    const text = flag_required(parsed, name);
    let value: bigint;
    try {
        value = BigInt(text);
    } catch {
        throw new UsageError(`--${name} must be an integer, not "${text}"`);
    }
    if (value < 0n || value >= 1n << 128n) throw new UsageError(`--${name} must fit in a u128`);
    return value;
}

export function path_single(parsed: ParsedArgs): string {
    if (parsed.positional.length !== 1) {
        throw new UsageError('give exactly one data file path');
    }
    return parsed.positional[0]!;
}

/** The flags that size the data file; `format` and `start` take the same ones. */
export const capacity_flags = ['clients-max', 'accounts-max', 'transfers-max'] as const;

export function capacity_parse(parsed: ParsedArgs): Capacity {
    return {
        clients_max: flag_integer(parsed, 'clients-max', clients_max_default, 1, 4096),
        accounts_max: flag_integer(parsed, 'accounts-max', accounts_max_default, 1, 2 ** 30),
        transfers_max: flag_integer(parsed, 'transfers-max', transfers_max_default, 1, 2 ** 30),
    };
}
