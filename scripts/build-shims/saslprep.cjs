// What a deployable's bundle gets for `@mongodb-js/saslprep` when the MongoDB driver's SCRAM module requires it
// (scripts/build.mjs): the same function, the package loaded on its first call. The package inflates and indexes its
// Unicode tables as it loads (zlib, sparse bitfields: ~5 ms of every MongoDB deployable's start in its profile), and
// the driver requires it at load, but calls it only to prepare a password for SCRAM-SHA-256: a start against a
// MongoDB URL with credentials still loads it, on its first authentication. The exports are the package's
// (saslprep 1.6: the function, also as `saslprep` and `default`).
let loaded;
function saslprep(input, opts) {
  loaded ??= require('@mongodb-js/saslprep');
  return loaded(input, opts);
}
saslprep.saslprep = saslprep;
saslprep.default = saslprep;
module.exports = saslprep;
