import { z } from 'zod';
import { parseIsoDurationMs } from './iso-duration.js';

/*
 * The parts of Knative Eventing v1 Brokers and Triggers that the router uses, as zod schemas. The CRD schemas
 * (knative.dev/eventing's config/core/resources) check little (`spec` of a Trigger is preserve-unknown); what the
 * Knative admission webhook would reject is rejected here too, so a manifest that fails in the cluster
 * fails at the router's start-up instead of silently routing differently.
 */

/**
 * A map from CloudEvents attribute names to values. Knative webhook (ValidateAttributesNames): names are
 * lower-case alphanumerics, starting with a letter. Checked here (not as a record key schema) so that the
 * error names the offending key.
 */
function attributeMap<V extends z.ZodType>(value: V) {
  return z.record(z.string(), value).superRefine((map, ctx) => {
    for (const name of Object.keys(map)) {
      if (!/^[a-z][a-z0-9]*$/.test(name)) {
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: 'a CloudEvents attribute name is lower-case letters and digits, starting with a letter',
        });
      }
    }
  });
}

const isoDuration = z
  .string()
  .refine((text) => parseIsoDurationMs(text) !== undefined, 'must be an ISO 8601 duration such as PT0.2S');

export const kReferenceSchema = z.looseObject({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
});

/** duckv1.Destination: a `ref` to an Addressable, a `uri`, or a ref plus a relative uri. */
export const destinationSchema = z
  .looseObject({
    ref: kReferenceSchema.optional(),
    uri: z.string().min(1).optional(),
    CACerts: z.string().optional(),
    audience: z.string().optional(),
  })
  .refine((destination) => destination.ref !== undefined || destination.uri !== undefined, {
    message: 'a destination needs a ref or a uri',
  });

/** duckv1.DeliverySpec (Knative Eventing delivery spec). `timeout` is the beta per-attempt timeout. */
export const deliverySchema = z.looseObject({
  deadLetterSink: destinationSchema.optional(),
  retry: z.number().int().min(0).optional(),
  backoffPolicy: z.enum(['linear', 'exponential']).optional(),
  backoffDelay: isoDuration.optional(),
  timeout: isoDuration.optional(),
  retryAfterMax: isoDuration.optional(),
  format: z.enum(['json', 'binary']).optional(),
});

/** One key and one non-empty value (webhook: ValidateSingleAttributeMap; empty values make the filter a no-op). */
const singleAttribute = attributeMap(z.string().min(1, 'the value must not be empty')).refine(
  (map) => Object.keys(map).length === 1,
  'exactly one attribute: value pair (Knative webhook: "Multiple items found, can have only one key-value"); ' +
    'to require several attributes, list one filter per attribute: filters: [{exact: {type: …}}, {exact: {other: …}}]',
);

export interface SubscriptionsApiFilter {
  exact?: Record<string, string>;
  prefix?: Record<string, string>;
  suffix?: Record<string, string>;
  all?: SubscriptionsApiFilter[];
  any?: SubscriptionsApiFilter[];
  not?: SubscriptionsApiFilter;
  cesql?: string;
}

const DIALECTS = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'cesql'] as const;

/**
 * One expression of `spec.filters` (Knative "new trigger filters", CloudEvents Subscriptions API).
 * Strict on keys: the API server would prune a misspelt dialect and leave `{}`, which matches every event.
 */
export const subscriptionsApiFilterSchema: z.ZodType<SubscriptionsApiFilter> = z.lazy(() =>
  z
    .strictObject({
      exact: singleAttribute.optional(),
      prefix: singleAttribute.optional(),
      suffix: singleAttribute.optional(),
      all: z.array(subscriptionsApiFilterSchema).min(1).optional(),
      any: z.array(subscriptionsApiFilterSchema).min(1).optional(),
      not: subscriptionsApiFilterSchema.optional(),
      cesql: z.string().optional(),
    })
    .superRefine((filter, ctx) => {
      const present = DIALECTS.filter((dialect) => filter[dialect] !== undefined);
      // Knative webhook (ValidateOneOf): "filters can have only one dialect set".
      if (present.length > 1) {
        ctx.addIssue({ code: 'custom', message: `only one dialect per filter, found ${present.join(', ')}` });
      }
      if (filter.cesql !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['cesql'],
          message: 'cesql filters are not supported by the local router; use exact, prefix, suffix, all, any or not',
        });
      }
    }),
);

const metadataSchema = z.looseObject({
  name: z.string().min(1),
  namespace: z.string().min(1).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const brokerManifestSchema = z.looseObject({
  apiVersion: z.literal('eventing.knative.dev/v1'),
  kind: z.literal('Broker'),
  metadata: metadataSchema,
  spec: z.looseObject({ delivery: deliverySchema.optional() }).optional(),
});

export const triggerManifestSchema = z.looseObject({
  apiVersion: z.literal('eventing.knative.dev/v1'),
  kind: z.literal('Trigger'),
  metadata: metadataSchema,
  spec: z.looseObject({
    broker: z.string().min(1).optional(),
    brokerRef: z.looseObject({ name: z.string().min(1), namespace: z.string().min(1).optional() }).optional(),
    filter: z.looseObject({ attributes: attributeMap(z.string()).optional() }).optional(),
    filters: z.array(subscriptionsApiFilterSchema).optional(),
    subscriber: destinationSchema,
    delivery: deliverySchema.optional(),
  }),
});

export type KReference = z.infer<typeof kReferenceSchema>;
export type Destination = z.infer<typeof destinationSchema>;
export type DeliverySpec = z.infer<typeof deliverySchema>;
export type BrokerManifest = z.infer<typeof brokerManifestSchema>;
export type TriggerManifest = z.infer<typeof triggerManifestSchema>;
