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
];
