# One image for both processes: the gateway (default) and the worker (`npm run worker`), both
# compiled JavaScript run by plain Node (`npm run build`: entry points and the workflow bundle).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# A few lines the Temporal SDK lacks options for (src/worker.ts, WorkflowSandbox), applied by npm ci.
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# A few lines the Temporal SDK lacks options for (src/worker.ts, WorkflowSandbox), applied by npm ci.
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY migrations ./migrations
USER node
EXPOSE 3000
CMD ["npm", "run", "gateway"]
