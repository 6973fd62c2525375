/**
 * The bridge's telemetry batches between two readings of its `/metrics`: how many closed for which reason
 * (count, bytes, linger, flush) and how many messages they held. Whether a `BATCH_MAX_COUNT` is ever reached
 * shows here: with fewer messages in flight than the count (sessions × MAX_IN_FLIGHT), batches close by linger.
 */
export interface BatchCloses {
  byReason: Record<string, number>;
  batches: number;
  messages: number;
}

function read(text: string): BatchCloses {
  const byReason: Record<string, number> = {};
  for (const match of text.matchAll(/^kiot_bridge_batches_total\{reason="([a-z]+)"\} ([0-9.e+]+)$/gm))
    byReason[match[1]!] = Number(match[2]);
  const sum = (name: string) => Number(new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    byReason,
    batches: sum('kiot_bridge_batch_messages_count'),
    messages: sum('kiot_bridge_batch_messages_sum'),
  };
}

/** Reads the bridge's batch counters now; `since()` gives what closed after that. */
export async function bridgeBatchMeter(metricsUrl: string): Promise<{ since(): Promise<BatchCloses> }> {
  const fetchText = async () => (await (await fetch(metricsUrl)).text()) as string;
  const before = read(await fetchText());
  return {
    async since() {
      const after = read(await fetchText());
      const byReason = Object.fromEntries(
        Object.entries(after.byReason)
          .map(([reason, n]) => [reason, n - (before.byReason[reason] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      );
      return { byReason, batches: after.batches - before.batches, messages: after.messages - before.messages };
    },
  };
}

/** `412 batches of 72.8 messages on average (count 300, linger 112)`. */
export const describeBatches = (closes: BatchCloses) =>
  `${closes.batches} batches of ${(closes.messages / Math.max(1, closes.batches)).toFixed(1)} messages on average (` +
  `${
    Object.entries(closes.byReason)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(', ') || 'none'
  })`;
