/**
 * What an API key may do, from its scopes (`resource:action`, `resource:*`, `*`), as the functions decide it
 * (shared/api-keys.ts): the console shows a control only when the key's scopes allow the route behind it.
 * The API refuses anyway; hiding is for the person, not for security.
 */
export function allows(scopes: readonly string[], required: string): boolean {
  const resource = required.split(':')[0];
  return scopes.some((scope) => scope === '*' || scope === required || scope === `${resource}:*`);
}

/** The scopes each part of the console reads or changes with (the routes' `scope` in each capability). */
export const SCOPES = {
  devicesRead: 'devices:read',
  devicesWrite: 'devices:write',
  telemetryRead: 'telemetry:read',
  telemetryWrite: 'telemetry:write',
  commandsRead: 'commands:read',
  commandsWrite: 'commands:write',
  reportsRead: 'reports:read',
  reportsWrite: 'reports:write',
  jobsRead: 'jobs:read',
  jobsWrite: 'jobs:write',
  deadLettersRead: 'deadletters:read',
  deadLettersWrite: 'deadletters:write',
} as const;

export type Permission = keyof typeof SCOPES;

/** Every permission of a key at once, for views that ask often. */
export function permissionsOf(scopes: readonly string[]): Record<Permission, boolean> {
  return Object.fromEntries(
    (Object.keys(SCOPES) as Permission[]).map((name) => [name, allows(scopes, SCOPES[name])]),
  ) as Record<Permission, boolean>;
}

/** A key that can change nothing the console offers to change. */
export function isReadOnly(scopes: readonly string[]): boolean {
  const can = permissionsOf(scopes);
  return !(
    can.devicesWrite ||
    can.telemetryWrite ||
    can.commandsWrite ||
    can.reportsWrite ||
    can.jobsWrite ||
    can.deadLettersWrite
  );
}
