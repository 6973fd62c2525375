// What mqtt.js's connect/index.js gets for `./ws` in a deployable's bundle (scripts/build.mjs): its first connect
// requires the WebSocket stream builders with the `ws` package (and its permessage-deflate, node:zlib streams)
// whatever the URL's protocol; kiot connects over TCP (mqtt://, mqtts://). Loaded when a ws:// URL builds a stream.
Object.defineProperty(exports, '__esModule', { value: true });
exports.streamBuilder = (...args) => require('mqtt/lib/connect/ws').streamBuilder(...args);
exports.browserStreamBuilder = (...args) => require('mqtt/lib/connect/ws').browserStreamBuilder(...args);
