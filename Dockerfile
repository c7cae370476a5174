# One image for both processes: the gateway (default) and the worker (`npm run worker`).
# TypeScript runs through tsx, a runtime dependency, so there is no separate build step.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY migrations ./migrations
# The workflow bundle is built once here, so no worker runs webpack at start.
RUN npx tsx src/bin/bundle-workflows.ts /app/workflow-bundle.js
USER node
EXPOSE 3000
CMD ["npm", "run", "gateway"]
