-- Secrets (SPEC §10), encrypted by pipeline-svc with XChaCha20-Poly1305: `ciphertext` holds the
-- sealed value with its tag, `nonce` the random 24-byte nonce of that one value. The scope and
-- the name are the associated data, so a ciphertext copied to another row does not open.
-- A repo secret has `repo_id`; a global one has none. A repo's secrets go with the repo.
CREATE TABLE secrets (
    id          uuid PRIMARY KEY,
    repo_id     uuid REFERENCES repos (id) ON DELETE CASCADE,
    name        text NOT NULL,
    protected   boolean NOT NULL DEFAULT false,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- NULLS NOT DISTINCT (Postgres 15): one global secret per name too.
ALTER TABLE secrets ADD CONSTRAINT secrets_scope_name UNIQUE NULLS NOT DISTINCT (repo_id, name);

-- One row: a known plaintext sealed under the key in use, so a start with another key is a
-- clear error instead of secrets that no longer open.
CREATE TABLE secrets_key_check (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
