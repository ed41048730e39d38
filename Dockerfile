# syntax=docker/dockerfile:1
# kopek's container image, for people with Docker. The operator is TypeScript; the image runs it
# compiled to JavaScript by tsc (types erased, imports renamed .ts → .js: tsconfig.build.json),
# which spares every kopek process the ~30 MiB that Node's type stripping keeps resident
# (docs/decisions/0016-image-runs-compiled-javascript.md).
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/kopek/kopek:0.1.0 --push .
#
# The image is multi-arch friendly (no native modules), so kopek itself can run on Graviton and
# Spot nodes. Without Docker, `npm run image` (test/image/build.ts) builds the same image —
# Debian 12, Node 24 at /nodejs/bin/node, the same files, entrypoint, user, environment and
# port — reproducibly; test/chart/dockerfile.test.ts keeps the two in step.

# ---- deps: production node_modules from the lockfile ----
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- compile: kopek's TypeScript to JavaScript, with the lockfile's TypeScript ----
FROM node:24-bookworm-slim AS compile
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY operator/ operator/
COPY recommender/ recommender/
# The base image's node: the `node` devDependency's own binary is not installed (--ignore-scripts).
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir /app
COPY package.json /app/package.json
COPY crds/ /app/crds/

# ---- runtime: distroless Node 24, no shell or package manager, non-root ----
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
# A small young generation keeps resident memory near the heap (docs/decisions/0015-small-young-generation.md).
ENV NODE_OPTIONS=--max-semi-space-size=2
COPY --from=compile /app/package.json /app/package.json
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=compile /app/operator /app/operator
COPY --from=compile /app/recommender /app/recommender
COPY --from=compile /app/crds /app/crds
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# Nothing is written at run time: the image works with readOnlyRootFilesystem: true.
ENTRYPOINT ["/nodejs/bin/node", "/app/operator/cli/kopek.js"]
CMD ["run"]
