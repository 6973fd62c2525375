/** The Node arguments a deployable runs with in production (`nodeArgs` in knative/deploy-values.json); [] when none. */
export function productionNodeArgs(deployable: string): string[];
/** The Knative Service a function's Triggers address: `<name>-events` where the values split it, else `<name>`. */
export function eventReceiverOf(fn: string): string;
