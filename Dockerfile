# syntax=docker/dockerfile:1
# One image for every deployable (the bridge and each function): the bundles are small and share one base
# layer, so a node pulls one image once and every cold start after that finds it cached. The deployable is
# the command: `node dist/<name>.js` in the manifests (knative/services, knative/bridge), or KIOT_DEPLOYABLE
# with `docker run`. Why one image rather than one per deployable: docs/deploy.md ("The image").

ARG NODE_IMAGE=node:20-alpine

# 1. Build: all dependencies, then esbuild bundles every deployable into dist/<name>.js.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY shared shared
COPY functions functions
COPY bridge bridge
RUN npm run build \
 && rm -f dist/bench-* dist/router.js* dist/simulator.js*

# 2. Runtime dependencies: only what stays outside the bundles (scripts/build.mjs `external`): the functions
# framework, at the version the lockfile pins.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN node -e "const fs=require('fs');const p=require('./package.json');const keep='@google-cloud/functions-framework';p.dependencies={[keep]:p.dependencies[keep]};delete p.devDependencies;delete p.overrides;delete p.scripts;fs.writeFileSync('package.json',JSON.stringify(p,null,2));" \
 && npm install --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

# 3. Runtime: Node 20 on Alpine, non-root, read-only friendly (nothing is written at run time).
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    KIOT_DEPLOYABLE=""
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=deps --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/dist ./dist
# The `node` user of the official image, by number so that Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 8080
# Kubernetes gives the command (node is PID 1 and gets SIGTERM itself); this default serves `docker run`.
CMD ["sh", "-c", "exec node dist/${KIOT_DEPLOYABLE:?set KIOT_DEPLOYABLE to bridge or a function name}.js"]
