{
  "targets": [
    {
      "target_name": "ringledger",
      "sources": [
        "native/addon.cc",
        "native/aegis.cc",
        "native/engine.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=9",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": [
        "-std=c++20",
        "-fno-exceptions",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-parameter",
        "-Wno-missing-field-initializers"
      ],
      "libraries": [
        "<!(node scripts/check_liburing.js)"
      ]
    }
  ]
}
