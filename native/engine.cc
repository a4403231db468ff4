// The io_uring engine. Placeholder until implemented.
#include "addon.h"

namespace ringledger {

void engine_register(Napi::Env env, Napi::Object exports) {}

}  // namespace ringledger
