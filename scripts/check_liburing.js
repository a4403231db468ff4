'use strict';
// Called by binding.gyp while gyp configures the addon. It prints the linker flag for liburing on
// stdout, or, when liburing's headers are missing, one paragraph on stderr naming the package to
// install, so that the user reads the fix before the compiler error rather than instead of it.
const fs = require('node:fs');

const header_paths = ['/usr/include/liburing.h', '/usr/local/include/liburing.h'];
const header_found = header_paths.some((path) => fs.existsSync(path));
if (!header_found) {
  process.stderr.write(
    '\nringledger: liburing development headers were not found (looked for ' +
      header_paths.join(', ') +
      '). The addon does all disk and network I/O through io_uring and links the system ' +
      'liburing. Install it and build again: Debian/Ubuntu `apt-get install liburing-dev`, ' +
      'Fedora/RHEL `dnf install liburing-devel`, Alpine `apk add liburing-dev`.\n\n',
  );
  process.exit(1);
}
process.stdout.write('-luring');
