# syntax=docker/dockerfile:1
# One image for every deployable (the bridge and each function): the bundles are small and share one base
# layer, so a node pulls one image once and every cold start after that finds it cached. The deployable is
# the command: `node <heap flags> dist/<name>.js` in the manifests (knative/services, knative/bridge), or
# KIOT_DEPLOYABLE with `docker run` (the same flags, from dist/<name>.node-args). Why one image rather than one per deployable: docs/deploy.md ("The image").
# `npm run image` builds it with docker, podman or buildah; where no registry is reachable it makes the
# base below locally first (scripts/image/base.sh), under the same name.

# Node 20 on Debian 12 slim, pinned to the patch release (scripts/image/base.sh reads the version from here).
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# 1. Build: all dependencies, then esbuild bundles every deployable, the functions framework included, into
#    dist/<name>.bundle.cjs (started by the launcher dist/<name>.js), and the build trains each bundle's V8 code
#    cache by starting it once with its manifest's Node arguments (`nodeArgs`, knative/deploy-values.json, which
#    V8 checks the cache against; also written to dist/<name>.node-args): this image's Node makes the cache this
#    image's Node reads. docs/performance.md, "Cold start".
# Behind a TLS-intercepting proxy, pass its CA bundle as the build secret `npm-ca` (`--secret
# id=npm-ca,src=…`; scripts/image/build.sh does): a secret is mounted for this step only, never stored
# in a layer. npm 10 can exit 0 after "Exit handler never called!" without installing everything, so
# what each step installed is checked, not only its exit status.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm-ca,required=false \
    if [ -s /run/secrets/npm-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm-ca; fi \
 && npm ci --no-audit --no-fund --ignore-scripts \
 && npm ls --omit=optional >/dev/null
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build-console.mjs scripts/launcher.cjs scripts/deploy-values.mjs scripts/
COPY scripts/build-shims scripts/build-shims
COPY knative/deploy-values.json knative/deploy-values.json
COPY shared shared
COPY functions functions
COPY bridge bridge
COPY tick-gate tick-gate
COPY console console
RUN npm run build \
 && rm -f dist/bench-* dist/router.* dist/simulator.* dist/stack.*

# 2. Runtime: non-root, read-only friendly (nothing is written at run time). No node_modules: the bundles hold
# every dependency. Only dist/, whose own package.json says that its launchers dist/*.js are CommonJS.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    KIOT_DEPLOYABLE=""
WORKDIR /app
COPY --from=build --chown=root:root /app/dist ./dist
# The `node` user of the base image, by number so that Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 8080
# Kubernetes gives the command (node is PID 1 and gets SIGTERM itself); this default serves `docker run`, with the
# deployable's heap flags as its manifest gives them (the code cache was trained under them).
CMD ["sh", "-c", "d=${KIOT_DEPLOYABLE:?set KIOT_DEPLOYABLE to bridge or a function name} && exec node $(cat dist/$d.node-args) dist/$d.js"]
