// What a `ringledger` subcommand is: a name in main.ts's table, a one-line summary, its usage,
// and `run`, which returns the process exit code. Each subcommand lives in its own file.

export interface CliCommand {
    readonly summary: string;
    readonly usage: string;
    run(args: readonly string[]): Promise<number>;
}

/** A user error: printed with the command's usage, exit code 2 (not a crash). */
export class UsageError extends Error {}
