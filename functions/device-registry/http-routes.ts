import { z } from 'zod';
import { deviceIdSchema } from '../../shared/devices.js';
import { parseInput as parse } from '../../shared/errors.js';
import type { HttpRequest } from '../../shared/function-app.js';
import { queryObject } from '../../shared/http-io.js';
import { type ApiOperation, appProblems, operation, problem } from '../../shared/openapi.js';
import type { RegistryDeps } from './deps.js';
import * as s from './schema.js';
import { authenticate, authorize } from './use-cases/broker-hooks.js';
import { deleteDevice } from './use-cases/delete-device.js';
import { getDeviceType, putDeviceType } from './use-cases/device-types.js';
import { createProvisioningToken } from './use-cases/provisioning-tokens.js';
import { getDevice, listDevices } from './use-cases/query-devices.js';
import { registerBulk } from './use-cases/register-bulk.js';
import { registerDevice } from './use-cases/register-device.js';
import { rotateCredentials } from './use-cases/rotate-credentials.js';
import { updateDevice } from './use-cases/update-device.js';
import { etagOf, requiredVersion, toView } from './view.js';

const idParam = (request: HttpRequest) => parse(deviceIdSchema, request.params.id, 'device id');
const body = (request: HttpRequest) => request.body;
const common = appProblems;

/** Every app route of the registry, with the contract the OpenAPI document is generated from. */
export function registryOperations(deps: RegistryDeps): ApiOperation[] {
  return [
    operation({
      method: 'POST',
      path: '/devices',
      scope: 'devices:write',
      summary: 'Register a device; its secret is shown this once',
      body: s.registerDeviceSchema,
      rules: [
        'metadata keys are 1-64 characters, do not start with $ nor contain . or U+0000 (at any depth, at most 6 levels), ' +
          'metadata at most 8 KiB; tags unique (400)',
      ],
      responses: {
        201: { description: 'registered', schema: s.registeredSchema, headers: { etag: 'the device version' } },
        ...common,
        409: problem('the id is taken'),
        503: problem('a store or the broker is unavailable'),
      },
      async handle(request, ctx) {
        const registered = await registerDevice(parse(s.registerDeviceSchema, body(request), 'device'), deps, ctx);
        return {
          status: 201,
          body: registered,
          headers: { etag: etagOf(registered.device.version), location: `/devices/${registered.device.id}` },
        };
      },
    }),
    operation({
      method: 'POST',
      path: '/devices/bulk',
      scope: 'devices:write',
      summary: 'Register up to 1,000 devices, one result per item',
      body: s.bulkRegisterSchema,
      rules: [
        'metadata keys are 1-64 characters, do not start with $ nor contain . or U+0000 (at any depth, at most 6 levels), metadata at most 8 KiB; ' +
          'tags unique (400) — per item, in its result',
      ],
      responses: {
        200: { description: 'a result per item', schema: s.bulkResultSchema },
        ...common,
        503: problem('a store or the broker is unavailable'),
      },
      async handle(request, ctx) {
        const { devices } = parse(s.bulkRegisterSchema, body(request), 'bulk request');
        return { status: 200, body: await registerBulk(devices, deps, ctx) };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices',
      scope: 'devices:read',
      summary: 'List devices by type, tag, status, id prefix or ids; cursor pagination on id',
      query: s.listQuerySchema,
      responses: { 200: { description: 'a page', schema: s.devicePageSchema }, ...common },
      async handle(request) {
        return {
          status: 200,
          body: await listDevices(parse(s.listQuerySchema, queryObject(request.query), 'query'), deps),
        };
      },
    }),
    operation({
      method: 'GET',
      path: '/device-summary',
      scope: 'devices:read',
      summary: 'Device counts for a fleet overview: total, by status, by type',
      responses: { 200: { description: 'the counts', schema: s.deviceSummarySchema }, ...common },
      async handle() {
        return { status: 200, body: await deps.devices.summary() };
      },
    }),
    operation({
      method: 'GET',
      path: '/devices/:id',
      params: { id: deviceIdSchema },
      scope: 'devices:read',
      summary: 'Read a device',
      responses: {
        200: { description: 'the device', schema: s.deviceViewSchema, headers: { etag: 'the device version' } },
        ...common,
        404: problem('no such device'),
      },
      async handle(request) {
        const device = await getDevice(idParam(request), deps);
        return { status: 200, body: toView(device), headers: { etag: etagOf(device.version) } };
      },
    }),
    operation({
      method: 'PATCH',
      path: '/devices/:id',
      params: { id: deviceIdSchema },
      scope: 'devices:write',
      summary: 'Change name, tags, metadata (replaced whole) or status',
      body: s.updateDeviceSchema,
      rules: [
        'metadata keys are 1-64 characters, do not start with $ nor contain . or U+0000 (at any depth, at most 6 levels), ' +
          'metadata at most 8 KiB; tags unique (400)',
        'at least one of name, tags, metadata, status (400)',
        'If-Match is the current ETag of the device (412)',
      ],
      headers: {
        'if-match': {
          description: 'the ETag read before (required: 428 without, 412 when stale)',
          required: true,
          schema: z.string().regex(/^\s*(?:W\/)?"\d{1,12}"\s*$/),
        },
      },
      responses: {
        200: { description: 'the updated device', schema: s.deviceViewSchema },
        ...common,
        404: problem('no such device'),
        412: problem('the version changed'),
        428: problem('If-Match missing'),
      },
      async handle(request, ctx) {
        const id = idParam(request);
        const version = requiredVersion(request.headers['if-match']);
        const updated = await updateDevice(
          { id, version, patch: parse(s.updateDeviceSchema, body(request), 'patch') },
          deps,
          ctx,
        );
        return { status: 200, body: toView(updated), headers: { etag: etagOf(updated.version) } };
      },
    }),
    operation({
      method: 'DELETE',
      path: '/devices/:id',
      params: { id: deviceIdSchema },
      scope: 'devices:write',
      summary: 'Delete a device; its broker access ends and it is disconnected',
      responses: { 204: { description: 'deleted' }, ...common, 404: problem('no such device') },
      async handle(request, ctx) {
        await deleteDevice(idParam(request), deps, ctx);
        return { status: 204 };
      },
    }),
    operation({
      method: 'POST',
      path: '/devices/:id/credentials',
      params: { id: deviceIdSchema },
      scope: 'devices:write',
      summary: 'Rotate the secret; the old one stops working',
      responses: {
        201: { description: 'the new secret, shown once', schema: s.registeredSchema },
        ...common,
        404: problem('no such device'),
      },
      async handle(request, ctx) {
        return { status: 201, body: await rotateCredentials(idParam(request), deps, ctx) };
      },
    }),
    operation({
      method: 'POST',
      path: '/provisioning-tokens',
      scope: 'provisioning:write',
      summary: 'Create a fleet claim token, shown once',
      body: s.createTokenSchema,
      rules: ['tags unique (400)'],
      responses: { 201: { description: 'the token', schema: s.tokenCreatedSchema }, ...common },
      async handle(request) {
        return {
          status: 201,
          body: await createProvisioningToken(parse(s.createTokenSchema, body(request), 'token request'), deps),
        };
      },
    }),
    operation({
      method: 'PUT',
      path: '/device-types/:type',
      params: { type: s.typeNameSchema },
      scope: 'devices:write',
      summary: "Set a device type's telemetry schema",
      body: s.deviceTypeSchema,
      responses: { 200: { description: 'the device type', schema: s.deviceTypeViewSchema }, ...common },
      async handle(request) {
        const type = parse(s.typeNameSchema, request.params.type, 'type name');
        const { telemetrySchema } = parse(s.deviceTypeSchema, body(request), 'device type');
        return { status: 200, body: await putDeviceType(type, telemetrySchema, deps) };
      },
    }),
    operation({
      method: 'GET',
      path: '/device-types/:type',
      params: { type: s.typeNameSchema },
      scope: 'devices:read',
      summary: "Read a device type's telemetry schema",
      responses: {
        200: { description: 'the device type', schema: s.deviceTypeViewSchema },
        ...common,
        404: problem('no such type'),
      },
      async handle(request) {
        return {
          status: 200,
          body: await getDeviceType(parse(s.typeNameSchema, request.params.type, 'type name'), deps),
        };
      },
    }),
    operation({
      method: 'POST',
      path: '/broker/authn',
      scope: 'broker:auth',
      summary: 'EMQX HTTP authentication hook',
      body: s.authnHookSchema,
      responses: { 200: { description: 'allow, deny or ignore', schema: s.authnResultSchema }, ...common },
      async handle(request) {
        return {
          status: 200,
          body: await authenticate(parse(s.authnHookSchema, body(request), 'authn request'), deps),
        };
      },
    }),
    operation({
      method: 'POST',
      path: '/broker/authz',
      scope: 'broker:auth',
      summary: 'EMQX HTTP authorization hook',
      body: s.authzHookSchema,
      responses: { 200: { description: 'allow, deny or ignore', schema: s.authzResultSchema }, ...common },
      async handle(request) {
        return { status: 200, body: await authorize(parse(s.authzHookSchema, body(request), 'authz request'), deps) };
      },
    }),
  ];
}
