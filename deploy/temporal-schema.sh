#!/bin/sh
# Creates or updates Temporal's two schemas (persistence and SQL visibility) on PostgreSQL with
# Temporal's SQL tool. One script for every place that sets up a Temporal server: docker-compose's
# `temporal-schema` job runs it in the admin-tools image, and `npm run test:production` runs it on
# this machine against the server it built, so both set the schemas up the same way.
#
# The SQL tool reads its connection from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and SQL_PASSWORD.
# The databases have the server's own variable names, so one setting serves both:
#   DBNAME                  the persistence database (default: temporal)
#   VISIBILITY_DBNAME       the visibility database (default: temporal_visibility)
#   TEMPORAL_SCHEMA_DIR     the server's schema/postgresql/v12 folder (default: the admin-tools image's)
#   TEMPORAL_SQL_TOOL       the SQL tool to run (default: temporal-sql-tool on PATH)
# Both databases must exist (compose: deploy/postgres-init.sql). Safe to run again: setup-schema
# leaves an existing schema alone and update-schema applies only the versions it lacks.
set -eu
tool="${TEMPORAL_SQL_TOOL:-temporal-sql-tool}"
schema_dir="${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"
db="${DBNAME:-temporal}"
visibility_db="${VISIBILITY_DBNAME:-temporal_visibility}"

"$tool" --db "$db" setup-schema -v 0.0
"$tool" --db "$db" update-schema -d "$schema_dir/temporal/versioned"
"$tool" --db "$visibility_db" setup-schema -v 0.0
"$tool" --db "$visibility_db" update-schema -d "$schema_dir/visibility/versioned"
