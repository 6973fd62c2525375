/** NODE_OPTIONS a deployable runs with in production, from knative/deploy-values.json; '' when it sets none. */
export function productionNodeOptions(deployable: string): string;
/** The Knative Service a function's Triggers address: `<name>-events` where the values split it, else `<name>`. */
export function eventReceiverOf(fn: string): string;
