# syntax=docker/dockerfile:1
# kopek's container image, for people with Docker. The operator is TypeScript run by Node 24
# itself (type stripping): there is no compile step, only the production dependencies to install.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/kopek/kopek:0.1.0 --push .
#
# The image is multi-arch friendly (no native modules), so kopek itself can run on Graviton and
# Spot nodes. Without Docker, `npm run image` (test/image/build.ts) builds the same image —
# Debian 12, Node 24 at /nodejs/bin/node, the same files, entrypoint, user, environment and
# port — reproducibly; test/chart/dockerfile.test.ts keeps the two in step.

# ---- build: production node_modules from the lockfile ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY operator/ operator/
COPY recommender/ recommender/
COPY crds/ crds/

# ---- runtime: distroless Node 24, no shell or package manager, non-root ----
FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
# A small young generation keeps resident memory near the heap (docs/decisions/0015-small-young-generation.md).
ENV NODE_OPTIONS=--max-semi-space-size=2
COPY --from=build /app/package.json /app/package.json
COPY --from=build /app/node_modules /app/node_modules
COPY --from=build /app/operator /app/operator
COPY --from=build /app/recommender /app/recommender
COPY --from=build /app/crds /app/crds
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
# Nothing is written at run time: the image works with readOnlyRootFilesystem: true.
ENTRYPOINT ["/nodejs/bin/node", "/app/operator/cli/kopek.ts"]
CMD ["run"]
