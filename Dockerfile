# syntax=docker/dockerfile:1
# One image for every role: `server`, `worker`, `dev`, `dead-letters …` (see docker-compose.yml).

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---- runtime: production dependencies and the compiled sources only ----
FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    OUTBOX_DIR=/app/outbox
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# The SQL migrations, applied by every role at start (and by `email migrate`).
COPY migrations ./migrations
# The outbox transport writes here; everything else stays read-only to the app's user.
RUN mkdir -p /app/outbox && chown node:node /app/outbox
USER node
# 8080: server (and dev); 8081: the worker's /healthz, /readyz, /metrics.
EXPOSE 8080 8081
ENTRYPOINT ["node", "dist/src/main/cli.js"]
CMD ["dev"]
