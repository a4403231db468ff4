// AEGIS-128L MAC (zero key, zero nonce) used as ringledger's checksum. Placeholder until implemented.
#include "addon.h"

namespace ringledger {

void aegis_register(Napi::Env env, Napi::Object exports) {}

}  // namespace ringledger
