// The benches start each deployable with its manifest's Node arguments (scripts/deploy-values.mjs, shared with the build).
export { productionNodeArgs } from '../../deploy-values.mjs';
