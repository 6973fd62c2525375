// A filter between `kubectl kustomize` and `kubectl apply -f -`: drops the Knative Services (kn creates
// them) and points the workloads' bare image name at the pushed image.
//   kubectl kustomize knative/overlays/prod | node scripts/deploy-lib/manifests.mjs --image REG/kiot:TAG | kubectl apply -f -
import { parseAllDocuments, stringify } from 'yaml';
import { loadValues } from './values.mjs';

export function isKnativeService(doc) {
  return (
    doc?.kind === 'Service' && typeof doc.apiVersion === 'string' && doc.apiVersion.startsWith('serving.knative.dev/')
  );
}

function podSpecs(doc) {
  const specs = [];
  if (doc?.spec?.template?.spec) specs.push(doc.spec.template.spec);
  if (doc?.spec?.jobTemplate?.spec?.template?.spec) specs.push(doc.spec.jobTemplate.spec.template.spec);
  return specs;
}

/** The documents kubectl should apply: no Knative Services, the image set. */
export function filterManifests(text, { image, bareImage }) {
  const out = [];
  for (const document of parseAllDocuments(text)) {
    if (document.errors.length > 0) throw new Error(document.errors.map((e) => e.message).join('; '));
    const doc = document.toJS();
    if (!doc || isKnativeService(doc)) continue;
    for (const spec of podSpecs(doc)) {
      for (const container of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
        if (container.image === bareImage || container.image?.startsWith(`${bareImage}:`)) container.image = image;
      }
    }
    out.push(doc);
  }
  return out.map((doc) => stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false, version: '1.1' })).join('---\n');
}

if (process.argv[1]?.endsWith('manifests.mjs')) {
  const index = process.argv.indexOf('--image');
  const image = index > 0 ? process.argv[index + 1] : undefined;
  if (!image) {
    process.stderr.write('usage: manifests.mjs --image REG/kiot:TAG < kustomize-output.yaml\n');
    process.exit(2);
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  process.stdout.write(
    filterManifests(Buffer.concat(chunks).toString('utf8'), { image, bareImage: loadValues().image }),
  );
}
