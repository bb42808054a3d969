/** Schema migrations, applied in order, each once, inside one transaction per migration. */
export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'functions, versions, code, invocations',
    sql: `
      CREATE TABLE code_blobs (
        sha256      text PRIMARY KEY,
        zip         bytea NOT NULL,
        size_bytes  integer NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE functions (
        name            text PRIMARY KEY,
        current_version integer NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE function_versions (
        version_id   text PRIMARY KEY,
        name         text NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
        version      integer NOT NULL,
        runtime      text NOT NULL,
        handler      text NOT NULL,
        memory_mb    integer NOT NULL,
        timeout_ms   integer NOT NULL,
        concurrency  integer NOT NULL,
        env          jsonb NOT NULL,
        code_sha256  text NOT NULL REFERENCES code_blobs(sha256),
        created_at   timestamptz NOT NULL DEFAULT now(),
        UNIQUE (name, version)
      );
      CREATE TABLE invocations (
        id               text PRIMARY KEY,
        function_name    text NOT NULL,
        function_version integer NOT NULL,
        async            boolean NOT NULL,
        status           text NOT NULL CHECK (status IN ('queued','running','succeeded','failed')),
        result           jsonb,
        error            jsonb,
        cold             boolean,
        worker_id        text,
        duration_ms      double precision,
        created_at       timestamptz NOT NULL DEFAULT now(),
        finished_at      timestamptz
      );
      CREATE INDEX invocations_function_created ON invocations (function_name, created_at DESC);
    `,
  },
  {
    id: 2,
    name: 'scaling: keep-alive, minimum warm and maximum instances per version',
    sql: `
      ALTER TABLE function_versions
        ADD COLUMN idle_timeout_ms integer NOT NULL DEFAULT 300000,
        ADD COLUMN min_warm integer NOT NULL DEFAULT 0,
        ADD COLUMN max_instances integer NOT NULL DEFAULT 100;
    `,
  },
  {
    id: 3,
    name: 'function logs',
    sql: `
      CREATE TABLE function_logs (
        id               bigserial PRIMARY KEY,
        function_name    text NOT NULL,
        function_version integer NOT NULL,
        invocation_id    text,
        sandbox_id       text NOT NULL,
        stream           text NOT NULL CHECK (stream IN ('stdout', 'stderr')),
        text             text NOT NULL,
        at               timestamptz NOT NULL
      );
      CREATE INDEX function_logs_function_at ON function_logs (function_name, at, id);
      CREATE INDEX function_logs_invocation ON function_logs (invocation_id) WHERE invocation_id IS NOT NULL;
    `,
  },
  {
    id: 4,
    name: 'API keys; functions that require a key to be invoked',
    sql: `
      CREATE TABLE api_keys (
        id           text PRIMARY KEY,
        name         text NOT NULL,
        secret_hash  text NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz
      );
      ALTER TABLE function_versions ADD COLUMN auth text NOT NULL DEFAULT 'none' CHECK (auth IN ('none', 'key'));
    `,
  },
  {
    id: 5,
    name: 'dead letters of asynchronous calls',
    sql: `
      CREATE TABLE dead_letters (
        id               text PRIMARY KEY,
        function_name    text NOT NULL,
        function_version integer NOT NULL,
        event            jsonb,
        error            jsonb NOT NULL,
        attempts         integer NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX dead_letters_function ON dead_letters (function_name, created_at);
    `,
  },
  {
    id: 6,
    name: 'network egress per function',
    sql: `ALTER TABLE function_versions ADD COLUMN network text NOT NULL DEFAULT 'none' CHECK (network IN ('none', 'egress'));`,
  },
  {
    id: 7,
    name: 'idempotent functions',
    sql: `ALTER TABLE function_versions ADD COLUMN idempotent boolean NOT NULL DEFAULT false;`,
  },
  {
    id: 8,
    name: 'function images: each version runs an OCI image by digest; a zip is kept only for zip deploys',
    sql: `
      ALTER TABLE function_versions ADD COLUMN image text;
      ALTER TABLE function_versions ALTER COLUMN code_sha256 DROP NOT NULL;
    `,
  },
  {
    id: 9,
    name: 'tenants: functions, keys and invocation records belong to a tenant; keys have a role; audit',
    sql: `
      CREATE TABLE tenants (
        name        text PRIMARY KEY,
        -- Only the quotas an admin set for this tenant; the rest are the platform's defaults.
        quotas      jsonb NOT NULL DEFAULT '{}',
        created_at  timestamptz NOT NULL DEFAULT now()
      );
      INSERT INTO tenants (name) VALUES ('default');

      ALTER TABLE functions ADD COLUMN tenant text NOT NULL DEFAULT 'default' REFERENCES tenants(name);
      ALTER TABLE functions ALTER COLUMN tenant DROP DEFAULT;
      CREATE INDEX functions_tenant ON functions (tenant, name);

      -- Today's keys stay admin keys, in tenant default.
      ALTER TABLE api_keys
        ADD COLUMN tenant text NOT NULL DEFAULT 'default' REFERENCES tenants(name) ON DELETE CASCADE,
        ADD COLUMN role text NOT NULL DEFAULT 'admin' CHECK (role IN ('admin', 'owner', 'developer', 'invoker', 'viewer')),
        ADD COLUMN expires_at timestamptz,
        ADD COLUMN functions text[];
      ALTER TABLE api_keys ALTER COLUMN tenant DROP DEFAULT, ALTER COLUMN role DROP DEFAULT;
      CREATE INDEX api_keys_tenant ON api_keys (tenant);

      -- A record keeps the tenant its function had when the call was made, so a name deleted and
      -- taken by another tenant does not hand the new owner the old one's records. Writers that
      -- know the tenant give it; the trigger fills it in for those that do not.
      ALTER TABLE invocations ADD COLUMN tenant text, ADD COLUMN caller_key_id text;
      UPDATE invocations SET tenant = 'default';
      CREATE INDEX invocations_tenant_created ON invocations (tenant, created_at);
      CREATE FUNCTION invocation_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.tenant IS NULL THEN
          NEW.tenant := (SELECT tenant FROM functions WHERE name = NEW.function_name);
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER invocations_tenant BEFORE INSERT ON invocations FOR EACH ROW EXECUTE FUNCTION invocation_tenant();

      ALTER TABLE dead_letters ADD COLUMN tenant text;
      UPDATE dead_letters SET tenant = 'default';
      CREATE TRIGGER dead_letters_tenant BEFORE INSERT ON dead_letters FOR EACH ROW EXECUTE FUNCTION invocation_tenant();

      CREATE TABLE audit_events (
        id          bigserial PRIMARY KEY,
        at          timestamptz NOT NULL DEFAULT now(),
        key_id      text,
        tenant      text NOT NULL,
        action      text NOT NULL,
        target      text NOT NULL,
        detail      jsonb NOT NULL DEFAULT '{}'
      );
      CREATE INDEX audit_events_tenant_at ON audit_events (tenant, at);
    `,
  },
  {
    id: 10,
    name: 'durable acceptance: refused calls, idempotency keys, what a re-queue needs, per-function async settings',
    sql: `
      ALTER TABLE invocations DROP CONSTRAINT IF EXISTS invocations_status_check;
      ALTER TABLE invocations ADD CONSTRAINT invocations_status_check CHECK (status IN ('queued','running','succeeded','failed','refused'));
      -- What the reconciler (scheduler/reconciler.ts) needs to queue an accepted async call again:
      -- the event (cleared once the call ends), the attempt it is at, when its status last changed,
      -- and how often it was queued again.
      ALTER TABLE invocations
        ADD COLUMN event jsonb,
        ADD COLUMN attempt integer,
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN requeues integer NOT NULL DEFAULT 0;
      CREATE INDEX invocations_unfinished_async ON invocations (updated_at) WHERE async AND status IN ('queued', 'running');

      -- Idempotency-Key of async submissions, per tenant and function, for a day (or until refused).
      CREATE TABLE idempotency_keys (
        tenant         text NOT NULL,
        function_name  text NOT NULL,
        key            text NOT NULL,
        invocation_id  text NOT NULL,
        refused        boolean NOT NULL DEFAULT false,
        created_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, function_name, key)
      );
      CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

      -- NULL: the platform's defaults (SKIFF_ASYNC_RETRIES, SKIFF_MAX_EVENT_AGE_SECONDS).
      ALTER TABLE function_versions
        ADD COLUMN maximum_retry_attempts integer,
        ADD COLUMN maximum_event_age_seconds integer;
    `,
  },
  {
    id: 11,
    name: 'API keys keep their secret sealed under the platform key, for verifying AWS Signature Version 4',
    sql: `
      -- NULL: a key made before this; it keeps working as a Bearer key, and cannot sign requests.
      ALTER TABLE api_keys ADD COLUMN secret_sealed text;
    `,
  },
  {
    id: 12,
    name: 'schedules and function URL CORS settings of a version',
    sql: `
      -- Both are settings of a version, like its other settings: a redeploy without them drops
      -- them, a rollback brings back the version's own. schedules: [{expression} | {everyMs}].
      ALTER TABLE function_versions
        ADD COLUMN schedules jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN cors jsonb;
      -- The schedules' owner reads the current versions that have any (infra/schedules/).
      CREATE INDEX function_versions_scheduled ON function_versions (name, version) WHERE schedules <> '[]';
    `,
  },
  {
    id: 13,
    name: 'function url invoke mode',
    sql: `ALTER TABLE function_versions ADD COLUMN invoke_mode text NOT NULL DEFAULT 'BUFFERED' CHECK (invoke_mode IN ('BUFFERED', 'RESPONSE_STREAM'));`,
  },
];
