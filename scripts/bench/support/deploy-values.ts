// The benches start each deployable with its manifest's Node options (scripts/deploy-values.mjs, shared with the build).
export { productionNodeOptions } from '../../deploy-values.mjs';
