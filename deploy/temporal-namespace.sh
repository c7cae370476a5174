#!/bin/sh
# Creates the namespace and the story workflow's custom search attributes on a Temporal server,
# with the Temporal CLI. One script for every place that sets up a Temporal server:
# docker-compose's `temporal-namespace` job runs it in the admin-tools image, and
# `npm run test:production` runs it on this machine, so both register the same attributes.
#
#   TEMPORAL_ADDRESS        the frontend, host:port (read by the CLI itself)
#   TEMPORAL_NAMESPACE      the namespace (default: default)
#   TEMPORAL_RETENTION      how long closed workflows are kept (default: 30d)
#   TEMPORAL_CLI            the CLI to run (default: temporal on PATH)
# Safe to run again: what exists is left as it is. Each attribute is retried until the server has
# it (a namespace just created takes a few seconds to be known to every service), and the script
# fails if one is still missing at the end rather than leaving workers to fail later.
# The list must match workflows/search-attributes.ts (a unit test compares them).
set -eu
cli="${TEMPORAL_CLI:-temporal}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${TEMPORAL_RETENTION:-30d}"
attributes="StoryStatus=Keyword VerifiedStatus=Keyword ProjectId=Keyword AssignedAgent=Keyword TenantId=Keyword Stalled=Keyword CustodyViolations=Int"

tries=0
until "$cli" operator namespace describe --namespace "$namespace" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 60 ]; then
    echo "namespace $namespace could not be created" >&2
    exit 1
  fi
  "$cli" operator namespace create --namespace "$namespace" --retention "$retention" 2>&1 \
    | grep -v -i "already" || true
  "$cli" operator namespace describe --namespace "$namespace" >/dev/null 2>&1 || sleep 1
done

for pair in $attributes; do
  name="${pair%%=*}"
  type="${pair#*=}"
  tries=0
  until "$cli" operator search-attribute list --namespace "$namespace" 2>/dev/null | grep -q -w "$name"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ]; then
      echo "search attribute $name was not created on namespace $namespace" >&2
      exit 1
    fi
    "$cli" operator search-attribute create --namespace "$namespace" --name "$name" --type "$type" 2>&1 \
      | grep -v -i "already exists" || true
    "$cli" operator search-attribute list --namespace "$namespace" 2>/dev/null | grep -q -w "$name" || sleep 1
  done
done
echo "namespace $namespace has the search attributes: $attributes"
