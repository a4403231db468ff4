// AEGIS-128L used as a MAC (zero key, zero nonce, input absorbed as associated data, 128-bit tag):
// ringledger's checksum, bit-for-bit the one TigerBeetle 0.17.9 puts on the wire and on disk
// (docs/wire-protocol.md §4). Two implementations of the same function live here: one on the x86
// AES-NI instruction, and a portable one built on a table-driven software AES round so that the
// addon also runs (slowly) where AES-NI is missing. The active one is chosen once at load by CPUID
// and can be overridden for tests, so both are exercised against each other on the same machine.
#include "addon.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define RINGLEDGER_AEGIS_X86 1
#include <immintrin.h>
#else
#define RINGLEDGER_AEGIS_X86 0
#endif

namespace ringledger {
namespace {

constexpr size_t block_size = 16;
constexpr size_t chunk_size = 32;
constexpr size_t tag_size = 16;

// The AEGIS constants (Fibonacci numbers mod 256), in memory byte order.
constexpr uint8_t aegis_c0[block_size] = {0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d,
                                          0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62};
constexpr uint8_t aegis_c1[block_size] = {0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1,
                                          0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd};

using ChecksumFunction = void (*)(const uint8_t* data, size_t length, uint8_t tag[tag_size]);

// ---------------------------------------------------------------------------------------------
// Portable AES round. The S-box and the four combined SubBytes+MixColumns tables are computed at
// compile time from the GF(2^8) definition rather than typed in, so there are no hand-copied
// constants to get wrong; static_asserts pin a few well-known S-box entries.

constexpr uint8_t gf_multiply(uint8_t a, uint8_t b) {
    uint8_t product = 0;
    for (int bit = 0; bit < 8; bit++) {
        if (b & 1) product ^= a;
        const bool carry = (a & 0x80) != 0;
        a = static_cast<uint8_t>(a << 1);
        if (carry) a ^= 0x1b;  // Reduce by the AES polynomial x^8 + x^4 + x^3 + x + 1.
        b >>= 1;
    }
    return product;
}

constexpr uint8_t rotate_left_8(uint8_t value, int shift) {
    return static_cast<uint8_t>((value << shift) | (value >> (8 - shift)));
}

constexpr uint8_t sbox_entry(uint8_t x) {
    // The multiplicative inverse is x^254 in GF(2^8) (and maps 0 to 0), followed by the affine map.
    uint8_t inverse = 1;
    for (int step = 0; step < 254; step++) inverse = gf_multiply(inverse, x);
    if (x == 0) inverse = 0;
    return static_cast<uint8_t>(inverse ^ rotate_left_8(inverse, 1) ^ rotate_left_8(inverse, 2) ^
                                rotate_left_8(inverse, 3) ^ rotate_left_8(inverse, 4) ^ 0x63);
}

struct AesTables {
    uint8_t sbox[256];
    // round_table[r][x]: the MixColumns column produced by S-box output of byte x sitting in row r,
    // as a little-endian word (row 0 in the low byte).
    uint32_t round_table[4][256];
};

constexpr uint32_t rotate_left_32(uint32_t value, int shift) {
    return shift == 0 ? value : (value << shift) | (value >> (32 - shift));
}

constexpr AesTables aes_tables_build() {
    AesTables tables{};
    for (int x = 0; x < 256; x++) {
        const uint8_t s = sbox_entry(static_cast<uint8_t>(x));
        tables.sbox[x] = s;
        // Row 0 of the input contributes (2s, s, s, 3s) to rows 0..3 of the output column.
        const uint32_t column = static_cast<uint32_t>(gf_multiply(s, 2)) |
                                (static_cast<uint32_t>(s) << 8) | (static_cast<uint32_t>(s) << 16) |
                                (static_cast<uint32_t>(gf_multiply(s, 3)) << 24);
        for (int row = 0; row < 4; row++) {
            tables.round_table[row][x] = rotate_left_32(column, 8 * row);
        }
    }
    return tables;
}

constexpr AesTables aes_tables = aes_tables_build();
static_assert(aes_tables.sbox[0x00] == 0x63);
static_assert(aes_tables.sbox[0x01] == 0x7c);
static_assert(aes_tables.sbox[0x53] == 0xed);
static_assert(aes_tables.sbox[0xff] == 0x16);

// A 16-byte AES state as four little-endian column words: column c holds bytes 4c..4c+3.
struct Block {
    uint32_t column[4];
};

inline Block block_load(const uint8_t* bytes) {
    Block block;
    for (int c = 0; c < 4; c++) {
        const uint8_t* b = bytes + 4 * c;
        block.column[c] = static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
                          (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
    }
    return block;
}

inline void block_store(uint8_t* bytes, const Block& block) {
    for (int c = 0; c < 4; c++) {
        for (int row = 0; row < 4; row++) {
            bytes[4 * c + row] = static_cast<uint8_t>(block.column[c] >> (8 * row));
        }
    }
}

inline Block block_xor(const Block& a, const Block& b) {
    Block result;
    for (int c = 0; c < 4; c++) result.column[c] = a.column[c] ^ b.column[c];
    return result;
}

// One AES encryption round, MixColumns(ShiftRows(SubBytes(x))) xor key, the same as x86 AESENC.
// ShiftRows moves row r left by r columns, so output column c reads row r from column c + r.
inline Block aes_round_portable(const Block& x, const Block& key) {
    const auto& t = aes_tables.round_table;
    Block result;
    for (int c = 0; c < 4; c++) {
        result.column[c] = t[0][x.column[c] & 0xff] ^
                           t[1][(x.column[(c + 1) & 3] >> 8) & 0xff] ^
                           t[2][(x.column[(c + 2) & 3] >> 16) & 0xff] ^
                           t[3][x.column[(c + 3) & 3] >> 24] ^ key.column[c];
    }
    return result;
}

struct StatePortable {
    Block s[8];
};

// The AEGIS-128L state update: every block takes one AES round keyed by itself, fed by its
// predecessor; the message enters blocks 0 and 4.
inline void update_portable(StatePortable& state, const Block& m0, const Block& m1) {
    const Block last = state.s[7];
    for (int i = 7; i > 0; i--) state.s[i] = aes_round_portable(state.s[i - 1], state.s[i]);
    state.s[0] = block_xor(aes_round_portable(last, state.s[0]), m0);
    state.s[4] = block_xor(state.s[4], m1);
}

void checksum_portable(const uint8_t* data, size_t length, uint8_t tag[tag_size]) {
    RL_ASSERT(data != nullptr || length == 0);
    RL_ASSERT(tag != nullptr);
    const Block zero{};
    const Block c0 = block_load(aegis_c0);
    const Block c1 = block_load(aegis_c1);
    // Key and nonce are zero, so K^N = 0, K^C0 = C0 and K^C1 = C1.
    StatePortable state{{zero, c1, c0, c1, zero, c0, c1, c0}};
    for (int round = 0; round < 10; round++) update_portable(state, zero, zero);

    size_t position = 0;
    for (; position + chunk_size <= length; position += chunk_size) {
        update_portable(state, block_load(data + position),
                        block_load(data + position + block_size));
    }
    if (position < length) {
        uint8_t padded[chunk_size] = {};
        std::memcpy(padded, data + position, length - position);
        update_portable(state, block_load(padded), block_load(padded + block_size));
    }

    uint8_t lengths[block_size] = {};
    const uint64_t length_bits = static_cast<uint64_t>(length) * 8;
    for (int i = 0; i < 8; i++) lengths[i] = static_cast<uint8_t>(length_bits >> (8 * i));
    const Block final_block = block_xor(state.s[2], block_load(lengths));
    for (int round = 0; round < 7; round++) update_portable(state, final_block, final_block);

    Block result = state.s[0];
    for (int i = 1; i < 7; i++) result = block_xor(result, state.s[i]);
    block_store(tag, result);
}

// ---------------------------------------------------------------------------------------------
// AES-NI. Only these functions are compiled for the AES extension (binding.gyp stays baseline), and
// they are only called after CPUID said the instruction exists.

#if RINGLEDGER_AEGIS_X86
#define RINGLEDGER_TARGET_AES __attribute__((target("aes,sse4.1")))

RINGLEDGER_TARGET_AES __attribute__((always_inline)) inline void update_aes_ni(__m128i s[8],
                                                                               __m128i m0,
                                                                               __m128i m1) {
    const __m128i last = s[7];
    s[7] = _mm_aesenc_si128(s[6], s[7]);
    s[6] = _mm_aesenc_si128(s[5], s[6]);
    s[5] = _mm_aesenc_si128(s[4], s[5]);
    s[4] = _mm_aesenc_si128(s[3], s[4]);
    s[3] = _mm_aesenc_si128(s[2], s[3]);
    s[2] = _mm_aesenc_si128(s[1], s[2]);
    s[1] = _mm_aesenc_si128(s[0], s[1]);
    s[0] = _mm_xor_si128(_mm_aesenc_si128(last, s[0]), m0);
    s[4] = _mm_xor_si128(s[4], m1);
}

RINGLEDGER_TARGET_AES void checksum_aes_ni(const uint8_t* data, size_t length,
                                           uint8_t tag[tag_size]) {
    RL_ASSERT(data != nullptr || length == 0);
    RL_ASSERT(tag != nullptr);
    const __m128i zero = _mm_setzero_si128();
    const __m128i c0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(aegis_c0));
    const __m128i c1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(aegis_c1));
    __m128i s[8] = {zero, c1, c0, c1, zero, c0, c1, c0};
    for (int round = 0; round < 10; round++) update_aes_ni(s, zero, zero);

    size_t position = 0;
    for (; position + chunk_size <= length; position += chunk_size) {
        const __m128i* chunk = reinterpret_cast<const __m128i*>(data + position);
        update_aes_ni(s, _mm_loadu_si128(chunk), _mm_loadu_si128(chunk + 1));
    }
    if (position < length) {
        alignas(16) uint8_t padded[chunk_size] = {};
        std::memcpy(padded, data + position, length - position);
        const __m128i* chunk = reinterpret_cast<const __m128i*>(padded);
        update_aes_ni(s, _mm_load_si128(chunk), _mm_load_si128(chunk + 1));
    }

    const uint64_t length_bits = static_cast<uint64_t>(length) * 8;
    const __m128i lengths = _mm_set_epi64x(0, static_cast<long long>(length_bits));
    const __m128i final_block = _mm_xor_si128(s[2], lengths);
    for (int round = 0; round < 7; round++) update_aes_ni(s, final_block, final_block);

    __m128i result = s[0];
    for (int i = 1; i < 7; i++) result = _mm_xor_si128(result, s[i]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(tag), result);
}

bool aes_ni_supported() { return __builtin_cpu_supports("aes") != 0; }
#else
void checksum_aes_ni(const uint8_t* data, size_t length, uint8_t tag[tag_size]) {
    RL_ASSERT(false);  // Unreachable: aes_ni_supported() is false on this architecture.
}

bool aes_ni_supported() { return false; }
#endif

// ---------------------------------------------------------------------------------------------
// Selection. The addon's static state is shared by every worker thread that loads it, so the active
// function is an atomic pointer; the environment variable is read once per process.

std::atomic<ChecksumFunction> checksum_active{checksum_portable};

void checksum_select_auto() {
    checksum_active.store(aes_ni_supported() ? checksum_aes_ni : checksum_portable);
}

// The checksum is stored on disk and compared across machines, so a wrong one is worse than none:
// each implementation this CPU can run must reproduce the published vectors before the addon loads.
void checksum_self_test(ChecksumFunction function) {
    constexpr uint8_t empty_expected[tag_size] = {0x83, 0xcc, 0x60, 0x0d, 0xc4, 0xe3, 0xe7, 0xe6,
                                                  0x2d, 0x40, 0x55, 0x82, 0x61, 0x74, 0xf1, 0x49};
    constexpr uint8_t zeros_expected[tag_size] = {0xf7, 0x2a, 0xd4, 0x8d, 0xd0, 0x5d, 0xd1, 0x65,
                                                  0x61, 0x33, 0x10, 0x1c, 0xd4, 0xbe, 0x3a, 0x26};
    const uint8_t zeros[block_size] = {};
    uint8_t tag[tag_size];
    function(zeros, 0, tag);
    RL_ASSERT(std::memcmp(tag, empty_expected, tag_size) == 0);
    function(zeros, block_size, tag);
    RL_ASSERT(std::memcmp(tag, zeros_expected, tag_size) == 0);
}

void checksum_select_from_environment() {
    checksum_self_test(checksum_portable);
    if (aes_ni_supported()) checksum_self_test(checksum_aes_ni);
    checksum_select_auto();
    const char* forced = std::getenv("RINGLEDGER_CHECKSUM");
    if (forced == nullptr || std::strcmp(forced, "auto") == 0 || forced[0] == '\0') return;
    if (std::strcmp(forced, "portable") == 0) {
        checksum_active.store(checksum_portable);
    } else if (std::strcmp(forced, "aes-ni") == 0 && aes_ni_supported()) {
        checksum_active.store(checksum_aes_ni);
    } else {
        // A bad setting must not stop the addon from loading; the checksum stays correct either
        // way, only its speed depends on the choice.
        std::fprintf(stderr, "ringledger: RINGLEDGER_CHECKSUM=%s is not usable here, using %s\n",
                     forced, aes_ni_supported() ? "aes-ni" : "portable");
    }
}

const char* checksum_active_name() {
    return checksum_active.load(std::memory_order_relaxed) == checksum_aes_ni ? "aes-ni"
                                                                              : "portable";
}

// ---------------------------------------------------------------------------------------------
// Node-API surface. Arguments come from JS, so every one is checked: the wrong type throws a
// TypeError, a value outside its buffer throws a RangeError, and nothing is read or written then.

// Reads a byte offset or length: an integer in [0, 2^53].
bool argument_integer(Napi::Env env, const Napi::Value& value, const char* name, size_t* result) {
    // One Node-API call both checks the type and reads the value: this runs three times per
    // checksum, and at header sizes the call overhead outweighs the AES rounds.
    double number = 0;
    if (napi_get_value_double(env, value, &number) != napi_ok) {
        Napi::TypeError::New(env, std::string(name) + " must be a number")
            .ThrowAsJavaScriptException();
        return false;
    }
    if (!(number >= 0 && number <= 9007199254740992.0) || std::floor(number) != number) {
        Napi::RangeError::New(env, std::string(name) + " must be a non-negative integer")
            .ThrowAsJavaScriptException();
        return false;
    }
    *result = static_cast<size_t>(number);
    return true;
}

// Resolves (array, offset, length) to a pointer, checking that the range lies inside the array.
bool argument_range(Napi::Env env, const Napi::CallbackInfo& info, size_t index,
                    const char* name, size_t length, const uint8_t** pointer) {
    uint8_t* data = nullptr;
    size_t size = 0;
    size_t offset = 0;
    if (!typed_array_span(env, info[index], &data, &size)) return false;
    if (!argument_integer(env, info[index + 1], "offset", &offset)) return false;
    if (offset > size || length > size - offset) {
        Napi::RangeError::New(env, std::string(name) + " range is outside its array")
            .ThrowAsJavaScriptException();
        return false;
    }
    *pointer = data + offset;
    RL_ASSERT(length == 0 || *pointer != nullptr);
    return true;
}

// Checksums source[offset..offset+length) and returns false after throwing when an argument is bad.
bool checksum_arguments(const Napi::CallbackInfo& info, uint8_t tag[tag_size],
                        const uint8_t** other) {
    Napi::Env env = info.Env();
    if (info.Length() != 5) {
        Napi::TypeError::New(env, "expected 5 arguments").ThrowAsJavaScriptException();
        return false;
    }
    size_t length = 0;
    const uint8_t* source = nullptr;
    if (!argument_integer(env, info[2], "length", &length)) return false;
    if (!argument_range(env, info, 0, "source", length, &source)) return false;
    if (!argument_range(env, info, 3, "target", tag_size, other)) return false;
    checksum_active.load(std::memory_order_relaxed)(source, length, tag);
    return true;
}

// checksum_into(source, offset, length, target, target_offset): writes the 16 tag bytes.
Napi::Value checksum_into(const Napi::CallbackInfo& info) {
    uint8_t tag[tag_size];
    const uint8_t* target = nullptr;
    if (!checksum_arguments(info, tag, &target)) return info.Env().Undefined();
    // The tag is computed into a local first so that a target overlapping the source is harmless.
    std::memcpy(const_cast<uint8_t*>(target), tag, tag_size);
    return info.Env().Undefined();
}

// checksum_equal(source, offset, length, expected, expected_offset): whether the tag matches.
Napi::Value checksum_equal(const Napi::CallbackInfo& info) {
    uint8_t tag[tag_size];
    const uint8_t* expected = nullptr;
    if (!checksum_arguments(info, tag, &expected)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), std::memcmp(tag, expected, tag_size) == 0);
}

Napi::Value checksum_implementation(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), checksum_active_name());
}

// checksum_select('portable' | 'aes-ni' | 'auto'): for tests and benchmarks. Process-wide.
Napi::Value checksum_select(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsString()) {
        Napi::TypeError::New(env, "expected an implementation name").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    if (name == "portable") {
        checksum_active.store(checksum_portable);
    } else if (name == "aes-ni" && aes_ni_supported()) {
        checksum_active.store(checksum_aes_ni);
    } else if (name == "auto") {
        checksum_select_auto();
    } else {
        Napi::Error::New(env, "checksum implementation not available: " + name)
            .ThrowAsJavaScriptException();
        return env.Undefined();
    }
    return Napi::String::New(env, checksum_active_name());
}

Napi::Value checksum_aes_ni_supported(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), aes_ni_supported());
}

}  // namespace

void aegis_register(Napi::Env env, Napi::Object exports) {
    // Once per process, by a function-local static: its guard is libstdc++'s futex, where
    // std::call_once would import pthread_once@GLIBC_2.34 and raise the prebuilds' glibc floor.
    static const bool selected = (checksum_select_from_environment(), true);
    RL_ASSERT(selected);
    exports.Set("checksum_into", Napi::Function::New(env, checksum_into));
    exports.Set("checksum_equal", Napi::Function::New(env, checksum_equal));
    exports.Set("checksum_implementation", Napi::Function::New(env, checksum_implementation));
    exports.Set("checksum_select", Napi::Function::New(env, checksum_select));
    exports.Set("checksum_aes_ni_supported", Napi::Function::New(env, checksum_aes_ni_supported));
}

}  // namespace ringledger
