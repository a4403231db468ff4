// Network addresses as users write them, for the server's `--addresses` and the client's
// `replica_addresses` alike: a bare port (127.0.0.1), IPv4 `a.b.c.d:port`, IPv6 `[v6]:port`, and
// host names `name:port`, which `addresses_resolve` turns into IP literals once, at startup (the
// engines take literals only: a name resolved per connect would block or race with DNS changes).
import dns from 'node:dns';
import net from 'node:net';

export interface Address {
    /** An IP literal once resolved (IPv6 without brackets), or a host name before. */
    host: string;
    port: number;
}

/** Parses one address; returns the error text when it is not one. */
export function address_parse(text: string, port_min = 0): Address | string {
    const trimmed = text.trim();
    if (/^\d+$/.test(trimmed)) return port_check({ host: '127.0.0.1', port_text: trimmed }, text,
        port_min);
    if (trimmed.startsWith('[')) {
        const close = trimmed.indexOf(']');
        if (close < 0 || trimmed[close + 1] !== ':') {
            return `"${text}" is not [IPv6]:port`;
        }
        const host = trimmed.slice(1, close);
        if (net.isIPv6(host) === false) return `"${text}": "${host}" is not an IPv6 address`;
        return port_check({ host, port_text: trimmed.slice(close + 2) }, text, port_min);
    }
    const colon = trimmed.lastIndexOf(':');
    if (colon < 0) return `"${text}" is not a port, host:port or [IPv6]:port`;
    const host = trimmed.slice(0, colon);
    if (host === '') return `"${text}" has an empty host`;
    if (host.includes(':')) return `"${text}": write an IPv6 address in brackets, [${host}]:port`;
    if (net.isIPv4(host) === false && !host_name_valid(host)) {
        return `"${text}": "${host}" is neither an IPv4 address nor a host name`;
    }
    return port_check({ host, port_text: trimmed.slice(colon + 1) }, text, port_min);
}

function port_check(parts: { host: string; port_text: string }, text: string,
    port_min: number): Address | string {
    const port = Number(parts.port_text);
    if (!/^\d+$/.test(parts.port_text) || port < port_min || port > 65535) {
        return `"${text}" has no valid port (${port_min}..65535)`;
    }
    return { host: parts.host, port };
}

/** RFC 1123 host names: labels of letters, digits and hyphens, dot separated. */
function host_name_valid(host: string): boolean {
    if (host.length > 253) return false;
    return host.split('.').every((label) =>
        /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

/**
 * Resolves every host name to an IP literal, once (startup only). A name that does not resolve
 * is an error naming it and the resolver's code.
 */
export async function addresses_resolve(addresses: readonly Address[]): Promise<Address[]> {
    const resolved: Address[] = [];
    for (const address of addresses) {
        if (net.isIP(address.host) !== 0) {
            resolved.push(address);
            continue;
        }
        try {
            const { address: host } = await dns.promises.lookup(address.host, { verbatim: true });
            resolved.push({ host, port: address.port });
        } catch (error) {
            throw new Error(`cannot resolve "${address.host}" ` +
                `(${(error as NodeJS.ErrnoException).code ?? String(error)}): check the name ` +
                'and the resolver (/etc/resolv.conf, the cluster DNS), or give an IP address');
        }
    }
    return resolved;
}

/** How an operator writes the address: `host:port`, or `[v6]:port` for an IPv6 literal. */
export function address_format(host: string, port: number): string {
    return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** 4 for an IPv4 literal (or `localhost`), 6 for an IPv6 literal, 0 for anything else. */
export function ip_family(host: string): 0 | 4 | 6 {
    if (host === 'localhost') return 4;
    const family = net.isIP(host);
    return family === 4 || family === 6 ? family : 0;
}

/** Parses a dotted IPv4 address (or `localhost`) without allocating; -1 when it is not one. */
export function ipv4_parse(host: string): number {
    if (host === 'localhost') return 0x7f000001;
    let address = 0;
    let octet = -1;
    let octets = 0;
    for (let index = 0; index < host.length; index++) {
        const code = host.charCodeAt(index);
        if (code >= 48 && code <= 57) {
            octet = (octet < 0 ? 0 : octet * 10) + (code - 48);
            if (octet > 255) return -1;
        } else if (code === 46 && octet >= 0 && octets < 3) {
            address = address * 256 + octet;
            octets += 1;
            octet = -1;
        } else {
            return -1;
        }
    }
    if (octet < 0 || octets !== 3) return -1;
    return address * 256 + octet;
}

/**
 * Writes an IPv6 literal as four 32-bit words in network order (word 0 holds bytes 0..3) into
 * `words`; false when it is not one. Handles `::` and an IPv4 tail (`::ffff:1.2.3.4`).
 */
export function ipv6_words(host: string, words: Uint32Array): boolean {
    if (!net.isIPv6(host)) return false;
    const groups = new Uint16Array(8);
    const halves = host.split('::');
    const head = halves[0] === '' ? [] : halves[0]!.split(':');
    const tail = halves.length === 2 ? (halves[1] === '' ? [] : halves[1]!.split(':')) : [];
    const last = (halves.length === 2 ? tail : head);
    if (last.length > 0 && last[last.length - 1]!.includes('.')) {
        const ipv4 = ipv4_parse(last.pop()!);
        last.push(((ipv4 >>> 16) & 0xffff).toString(16), (ipv4 & 0xffff).toString(16));
    }
    head.forEach((group, index) => { groups[index] = Number.parseInt(group, 16); });
    tail.forEach((group, index) => {
        groups[8 - tail.length + index] = Number.parseInt(group, 16);
    });
    for (let word = 0; word < 4; word++) {
        words[word] = (groups[2 * word]! * 0x10000 + groups[2 * word + 1]!) >>> 0;
    }
    return true;
}
