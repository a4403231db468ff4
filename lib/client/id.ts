// id(): a time-ordered, random, unique u128 in the ULID layout tigerbeetle-node uses, so ids made
// by either client sort together: the high 48 bits are milliseconds since the Unix epoch and the
// low 80 bits are random. Within one millisecond (or when the clock steps back) the previous id's
// low 80 bits are incremented instead, so the ids one process makes strictly increase.
import { randomFillSync } from 'node:crypto';

// The last id as 8 little-endian u16 words: words 0..4 random, 5..7 the millisecond timestamp.
const words = new Uint16Array(8);
const random_bytes = new Uint8Array(words.buffer, 0, 10);
const data = new DataView(words.buffer);
let timestamp_last_ms = 0;
const timestamp_max_ms = 2 ** 48;
const is_little_endian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A new id, greater than every id this process made before. */
export function id(): bigint {
    const now_ms = Date.now();
    if (now_ms > timestamp_last_ms) {
        timestamp_last_ms = now_ms;
        randomFillSync(random_bytes);
    } else {
        increment_random();
    }
    if (timestamp_last_ms >= timestamp_max_ms) throw new Error('id(): timestamp overflow');
    words[5] = timestamp_last_ms % 0x10000;
    words[6] = Math.floor(timestamp_last_ms / 0x10000) % 0x10000;
    words[7] = Math.floor(timestamp_last_ms / 0x1_0000_0000);
    // Uint16Array is in platform order; the DataView reads fix little-endian explicitly.
    return (data.getBigUint64(8, is_little_endian) << 64n) | data.getBigUint64(0, is_little_endian);
}

/** Adds 1 to the 80 random bits; when they wrap, time moves on by one millisecond instead. */
function increment_random(): void {
    for (let index = 0; index < 5; index++) {
        words[index] = (words[index]! + 1) & 0xFFFF;
        if (words[index] !== 0) return;
    }
    timestamp_last_ms += 1;
}
