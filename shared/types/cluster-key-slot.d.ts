// cluster-key-slot ships no types: the CRC16 hash slot of a key (Redis Cluster spec), hash tags included.
declare module 'cluster-key-slot' {
  export default function calculateSlot(key: string | Buffer): number;
  /** The common slot of all keys, or -1 when they span several. */
  export function generateMulti(keys: readonly (string | Buffer)[]): number;
}
