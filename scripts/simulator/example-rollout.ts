import { createHash, randomBytes } from 'node:crypto';

/**
 * The example rollout `npm start` shows a newcomer: a firmware artifact uploaded once, an OTA job to the
 * simulated fleet with an exponential ramp and an abort criterion, and a progress line until it ends. With
 * the default install failure rate (5 %) it completes; `SIM_JOB_FAILURE_RATE=0.5 npm start` shows an abort.
 */
export interface ExampleRolloutOptions {
  jobsUrl: string;
  apiKey: string;
  tag: string;
  write(line: string): void;
  pollMs?: number;
}

interface JobView {
  status: string;
  currentRatePerMinute?: number;
  reasonCode?: string;
  counts: Record<string, number>;
}

export async function exampleRollout(options: ExampleRolloutOptions): Promise<JobView> {
  const headers = { authorization: `Bearer ${options.apiKey}` };
  const call = async (path: string, init: RequestInit = {}) => {
    const response = await fetch(`${options.jobsUrl}${path}`, { ...init, headers: { ...headers, ...init.headers } });
    const text = await response.text();
    if (!response.ok)
      throw new Error(`${init.method ?? 'GET'} ${path} answered ${response.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const firmware = randomBytes(256 * 1024);
  const artifact = await call('/artifacts?name=sim-firmware&version=2.0.0', {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: firmware,
  });
  const jobId = `ota-example-${Date.now().toString(36)}`;
  await call('/jobs', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': jobId },
    body: JSON.stringify({
      jobId,
      type: 'ota',
      description: 'Example rollout: firmware 2.0.0 to the simulated fleet',
      document: {
        operation: 'ota',
        artifactId: artifact.artifactId,
        version: '2.0.0',
        sha256: createHash('sha256').update(firmware).digest('hex'),
        size: firmware.length,
      },
      targets: { tags: [options.tag] },
      rollout: {
        maximumPerMinute: 120,
        exponentialRate: {
          baseRatePerMinute: 6,
          incrementFactor: 2,
          rateIncreaseCriteria: { numberOfNotifiedDevices: 5 },
        },
      },
      abort: { criteria: [{ failureType: 'FAILED', thresholdPercentage: 30, minNumberOfExecutedDevices: 5 }] },
      timeout: { inProgressTimeoutInMinutes: 10 },
    }),
  });
  options.write(
    `rollout: OTA job ${jobId} (firmware 2.0.0) → devices tagged ${options.tag}; GET ${options.jobsUrl}/jobs/${jobId}`,
  );
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 5_000));
    const job = (await call(`/jobs/${jobId}`)) as unknown as JobView;
    const c = job.counts;
    options.write(
      `rollout: ${job.status} · rate ${job.currentRatePerMinute ?? '∞'}/min · pending ${c.pending} queued ${c.QUEUED} ` +
        `in progress ${c.IN_PROGRESS} · succeeded ${c.SUCCEEDED} failed ${c.FAILED} timed out ${c.TIMED_OUT} canceled ${c.CANCELED}`,
    );
    if (!['SCHEDULED', 'IN_PROGRESS'].includes(job.status)) {
      options.write(`rollout: ${jobId} ended ${job.status}${job.reasonCode ? ` (${job.reasonCode})` : ''}`);
      return job;
    }
  }
}
