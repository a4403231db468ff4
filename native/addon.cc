// Entry point of the ringledger addon: registers the arena helpers, the checksum and the engine.
#include "addon.h"

#include <sys/file.h>

#include <cerrno>
#include <cstdint>

namespace ringledger {

bool typed_array_span(Napi::Env env, const Napi::Value& value, uint8_t** data, size_t* length) {
    if (!value.IsTypedArray()) {
        Napi::TypeError::New(env, "expected a TypedArray").ThrowAsJavaScriptException();
        return false;
    }
    napi_typedarray_type type;
    size_t element_count = 0;
    void* pointer = nullptr;
    napi_value array_buffer;
    size_t byte_offset = 0;
    napi_status status = napi_get_typedarray_info(env, value, &type, &element_count, &pointer,
                                                  &array_buffer, &byte_offset);
    RL_ASSERT(status == napi_ok);
    size_t element_size = Napi::TypedArray(env, value).ElementSize();
    *data = static_cast<uint8_t*>(pointer);
    *length = element_count * element_size;
    return true;
}

// How many bytes past the start of a view the next 4096-byte boundary lies. JS allocates the arena
// as a SharedArrayBuffer (so worker threads see it) and V8 does not page-align those, so the arena
// is over-allocated and its usable region starts at this offset.
static Napi::Value arena_alignment_offset(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* data = nullptr;
    size_t length = 0;
    if (!typed_array_span(env, info[0], &data, &length)) return env.Undefined();
    uint32_t alignment = info[1].As<Napi::Number>().Uint32Value();
    RL_ASSERT(alignment > 0);
    RL_ASSERT((alignment & (alignment - 1)) == 0);
    uintptr_t address = reinterpret_cast<uintptr_t>(data);
    uintptr_t offset = (alignment - (address % alignment)) % alignment;
    RL_ASSERT(offset < alignment);
    return Napi::Number::New(env, static_cast<double>(offset));
}

// file_lock(fd): an exclusive flock(2) on the open file description, without blocking. Returns 0
// or -errno (-EWOULDBLOCK when another description holds it). The lock lives as long as the
// description: it is released when the last fd to it closes or the process dies, so a crashed
// holder never leaves a stale lock, and it holds across PID namespaces sharing the file.
static Napi::Value file_lock(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsNumber()) {
        Napi::TypeError::New(env, "file_lock(fd)").ThrowAsJavaScriptException();
        return env.Undefined();
    }
    int fd = info[0].As<Napi::Number>().Int32Value();
    int result = 0;
    do {
        result = flock(fd, LOCK_EX | LOCK_NB);
    } while (result == -1 && errno == EINTR);
    return Napi::Number::New(env, result == 0 ? 0 : -errno);
}

static Napi::Object init(Napi::Env env, Napi::Object exports) {
    exports.Set("arena_alignment_offset", Napi::Function::New(env, arena_alignment_offset));
    exports.Set("file_lock", Napi::Function::New(env, file_lock));
    aegis_register(env, exports);
    engine_register(env, exports);
    return exports;
}

}  // namespace ringledger

static Napi::Object addon_init(Napi::Env env, Napi::Object exports) {
    return ringledger::init(env, exports);
}

NODE_API_MODULE(ringledger, addon_init)
