// What mqtt.js's TCP and TLS stream builders get for `./socks` in a deployable's bundle (scripts/build.mjs): their
// modules require the SOCKS proxy support (the socks package, with ip-address and smart-buffer) on the first connect,
// and use it only when a connection names a `socksProxy`, which kiot's never do. Loaded when one does.
Object.defineProperty(exports, '__esModule', { value: true });
exports.default = (...args) => require('mqtt/lib/connect/socks').default(...args);
