#!/usr/bin/env node
// The `ringledger` binary: a table of subcommands, each in its own file. Adding one is one line.
import type { CliCommand } from './command';
import { UsageError } from './command';
import { command_benchmark } from './benchmark';
import { command_demo } from './demo';
import { command_format } from './format';
import { command_recover } from './recover';
import { command_repl } from './repl';
import { command_simulate } from './simulate';
import { command_start } from './start';

const commands: Record<string, CliCommand> = {
    format: command_format,
    recover: command_recover,
    start: command_start,
    benchmark: command_benchmark,
    repl: command_repl,
    demo: command_demo,
    simulate: command_simulate,
};

function usage_all(): string {
    const lines = ['usage: ringledger <command> [flags]', '', 'commands:'];
    for (const [name, command] of Object.entries(commands)) {
        lines.push(`  ${name.padEnd(10)} ${command.summary}`, `             ${command.usage}`);
    }
    return lines.join('\n');
}

async function main(argv: readonly string[]): Promise<number> {
    const name = argv[0];
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
        process.stdout.write(`${usage_all()}\n`);
        return name === undefined ? 2 : 0;
    }
    const command = commands[name];
    if (command === undefined) {
        process.stderr.write(`ringledger: unknown command "${name}"\n${usage_all()}\n`);
        return 2;
    }
    try {
        return await command.run(argv.slice(1));
    } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        process.stderr.write(`ringledger ${name}: ${error.message}\nusage: ${command.usage}\n`);
        return 2;
    }
}

main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
}, (error: unknown) => {
    process.stderr.write(`ringledger: internal error: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 70;
});
