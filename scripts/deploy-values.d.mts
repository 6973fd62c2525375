/** NODE_OPTIONS a deployable runs with in production, from knative/deploy-values.json; '' when it sets none. */
export function productionNodeOptions(deployable: string): string;
