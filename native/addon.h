// Shared declarations for the ringledger addon. Each native component registers its functions on
// the exports object from its own translation unit; addon.cc only wires them together.
#pragma once

#include <napi.h>

#include <cstdio>
#include <cstdlib>

// A broken invariant is a programmer error: crash loudly with the location, never continue.
#define RL_ASSERT(condition)                                                                   \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            std::fprintf(stderr, "ringledger: assertion failed: %s (%s:%d)\n", #condition,    \
                         __FILE__, __LINE__);                                                  \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

namespace ringledger {

void aegis_register(Napi::Env env, Napi::Object exports);
void engine_register(Napi::Env env, Napi::Object exports);

// Returns the data pointer and length of a TypedArray argument, or nullptr after throwing a
// TypeError into JS when the argument is not one.
bool typed_array_span(Napi::Env env, const Napi::Value& value, uint8_t** data, size_t* length);

}  // namespace ringledger
