/**
 * The health checks of a function app (`/healthz` and `connect()` at start), each shared by whoever asks while it
 * runs: a check already in flight when `/healthz` comes is the one its answer waits for, and once it has settled the
 * next caller starts a fresh one (a settled result is never reused, so ready still means that the store answered
 * after the probe came). Why: at a cold start `connect()` has sent a MongoDB ping before the server listens; the
 * first probe's own ping queued behind it and behind the start's index builds, on a pool connection of its own (one
 * more TCP connect and handshake). In traced starts of api-keys, telemetry-ingest and device-registry (load 4) the
 * probe's answer came 6–10 ms after connect()'s ping had been answered (docs/performance.md, "Cold start").
 */
export function joinInFlight(checks: Record<string, () => Promise<unknown>>): Record<string, () => Promise<unknown>> {
  const running = new Map<string, Promise<unknown>>();
  return Object.fromEntries(
    Object.entries(checks).map(([name, check]) => [
      name,
      () => {
        let current = running.get(name);
        if (current === undefined) {
          // Started now (connect() runs before the server listens); one that throws at once rejects like one that
          // fails later.
          try {
            current = Promise.resolve(check());
          } catch (error) {
            current = Promise.reject(error);
          }
          running.set(name, current);
          const forget = () => running.delete(name);
          current.then(forget, forget);
        }
        return current;
      },
    ]),
  );
}
