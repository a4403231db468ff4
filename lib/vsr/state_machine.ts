// What the replica asks of its state machine. The replica is generic over it: it validates,
// counts, executes and limits requests through this interface only, and the ledger implements it
// (lib/ledger/state_machine.ts). Bodies are read in place from pool messages.

/** A batch the state machine has no room for (thrown by execute when a limit was not checked). */
export class StateMachineCapacityError extends Error {}

export interface StateMachine {
    /** Whether a client may request this operation (register is the replica's own). */
    operation_supported(operation: number): boolean;
    /** Whether the operation creates state (counted against capacity limits). */
    operation_is_create(operation: number): boolean;
    /** Whether a request body is valid for its operation (never executes invalid input). */
    input_valid(operation: number, body: Uint8Array, offset: number, size: number): boolean;
    /** The events a valid body holds; the prepare timestamp advances by this many. */
    events_count(operation: number, body: Uint8Array, offset: number, size: number): number;
    /** The first limit (a `Limit` code) `events` more events of `operation` would exceed. */
    capacity_limit(operation: number, events: number): number;
    limit_value(limit: number): number;
    limit_used(limit: number): number;
    /** Executes a committed prepare body at its timestamp; writes the reply body, returns its
     * size. */
    execute(operation: number, timestamp_hi: number, timestamp_lo: number, body: Uint8Array,
        offset: number, size: number, output: Uint8Array, output_offset: number): number;
    /** The periodic pulse (expiry of pending transfers) at a prepare timestamp. */
    pulse(timestamp_hi: number, timestamp_lo: number, scratch: Uint8Array): void;
    /** Whether a pulse at this timestamp would change anything. */
    pulse_needed(timestamp_hi: number, timestamp_lo: number): boolean;
}
