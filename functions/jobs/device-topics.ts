// The device side of jobs over MQTT (AWS IoT Jobs' `$aws/things/{thing}/jobs/…` API in kiot's scheme
// `devices/{id}/…`, which every device's broker ACL already covers):
//   request                              answer on `<request>/accepted` or `<request>/rejected`
//   devices/{id}/jobs/get                the pending executions (IN_PROGRESS and QUEUED)
//   devices/{id}/jobs/start-next         starts the next QUEUED one (or returns the one IN_PROGRESS)
//   devices/{id}/jobs/{jobId}/get        one execution, with the job document
//   devices/{id}/jobs/{jobId}/update     a new status (IN_PROGRESS with progress, SUCCEEDED, FAILED, REJECTED)
//   notifications: devices/{id}/jobs/notify (the pending list changed), devices/{id}/jobs/notify-next
//   (the next execution changed; `{}` without `execution` when none is left).

export const notifyTopic = (deviceId: string) => `devices/${deviceId}/jobs/notify`;
export const notifyNextTopic = (deviceId: string) => `devices/${deviceId}/jobs/notify-next`;

export type DeviceRequest = 'get' | 'start-next' | 'describe' | 'update';

/** The topic a request was sent on (the answer goes to `<it>/accepted|rejected`). */
export function requestTopic(deviceId: string, request: DeviceRequest, jobId?: string): string {
  if (request === 'get' || request === 'start-next') return `devices/${deviceId}/jobs/${request}`;
  return `devices/${deviceId}/jobs/${jobId}/${request === 'describe' ? 'get' : 'update'}`;
}

/** The CloudEvent types the bridge makes of the four requests (bridge/topics.ts reads the same topics). */
export const JOB_REQUEST_TYPES = {
  get: 'io.kiot.job.pending.requested',
  'start-next': 'io.kiot.job.startnext.requested',
  describe: 'io.kiot.job.execution.requested',
  update: 'io.kiot.job.execution.update.requested',
} as const satisfies Record<DeviceRequest, string>;
