#!/usr/bin/env bash
# End-to-end proof that the docker-compose stack comes up and runs a pipeline through the
# gateway: two jobs on gitweave-busybox:latest, the second reading what the first wrote into
# the shared /workspace; then no job container may be left behind.
#
# Usage: scripts/compose-e2e.sh
# Environment:
#   SKIP_LOCAL_IMAGES=1   do not run scripts/local-images.sh all first
#   GATEWAY_PORT          host port of the gateway (default 18080)
#   E2E_TIMEOUT           seconds to wait for the stack, and again for the run (default 120)
#   KEEP_STACK=1          leave the stack running at the end (default: down -v)
#   GITWEAVE_API_TOKEN    passed to the gateway and pipeline-svc, and sent as the bearer token
#                         (default unset)
#   GITWEAVE_CARGO_PROFILE  the images' Cargo profile (default ci-image; release as users build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PROJECT=gitweave-e2e
export GATEWAY_PORT=${GATEWAY_PORT:-18080}
export RUNNER_PULL_POLICY=never
# The images' Cargo profile: `ci-image` (Cargo.toml: no optimisation, no debug info) unless the
# caller asks for another; this run drives the stack, it does not measure it, and the build is
# most of its time. `docker compose up --build` alone builds `release`.
export GITWEAVE_CARGO_PROFILE=${GITWEAVE_CARGO_PROFILE:-ci-image}
# Set: passed to the gateway and sent as the bearer token. Empty: unset, so the gateway
# runs without auth (compose passes the variable through only when it is set).
if [ -n "${GITWEAVE_API_TOKEN:-}" ]; then
  export GITWEAVE_API_TOKEN
else
  unset GITWEAVE_API_TOKEN
fi
TIMEOUT=${E2E_TIMEOUT:-120}
BASE="http://127.0.0.1:$GATEWAY_PORT"
API="$BASE/api/v1"
JOB_IMAGE=gitweave-busybox:latest

# docker-compose.local-repos.yml: pipeline-svc and runner-svc see RUNNER_LOCAL_REPO_ROOT (the
# work directory below), so the checkout step's file:// clone URL is accepted.
FILES=(-f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.local-repos.yml")
if command -v docker-compose >/dev/null; then
  COMPOSE=(docker-compose -p "$PROJECT" "${FILES[@]}")
elif docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose -p "$PROJECT" "${FILES[@]}")
else
  echo "compose-e2e: neither docker-compose nor 'docker compose' is installed" >&2
  exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gitweave-e2e.XXXXXX")
# pipeline-svc runs as uid 10001 and checks local repositories when a repo is saved, so it
# must be able to walk into this root (mktemp makes it 0700).
chmod 0755 "$WORK"
# Resolved: pipeline-svc stores (and compares) local clone URLs with symlinks resolved.
RUNNER_LOCAL_REPO_ROOT=$(cd "$WORK" && pwd -P)
export RUNNER_LOCAL_REPO_ROOT
# The stack makes its own random registration token (secrets-init); a token from the caller's
# environment would replace it.
unset RUNNER_REGISTRATION_TOKEN
STEP=0
step() { STEP=$((STEP + 1)); printf '\n[e2e %02d] %s\n' "$STEP" "$*"; }
info() { printf '         %s\n' "$*"; }
fail() { printf '\n[e2e] FAILED: %s\n' "$*" >&2; exit 1; }

# Job containers that existed before this run (another test suite may be using the same
# daemon); only new ones count as left behind.
job_containers() { docker ps -aq --filter label=gitweave.job | sort; }
job_containers >"$WORK/containers.before"
# Same for the runner's workspace volumes: the ones this run makes are removed at the end.
workspace_volumes() { docker volume ls -q --filter label=gitweave.workspace | sort; }
workspace_volumes >"$WORK/volumes.before"

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    printf '\n[e2e] ---- service logs (last 200 lines each) ----\n' >&2
    "${COMPOSE[@]}" ps >&2
    "${COMPOSE[@]}" logs --no-color --tail=200 >&2
  fi
  if [ "${KEEP_STACK:-0}" = 1 ]; then
    printf '\n[e2e] KEEP_STACK=1: the stack stays up (%s down -v --remove-orphans)\n' "${COMPOSE[*]}" >&2
  else
    printf '\n[e2e] tearing the stack down\n' >&2
    "${COMPOSE[@]}" down -v --remove-orphans >&2
    # Workspace volumes are the runner's, not compose's: remove the ones made during this run.
    local vols
    vols=$(comm -13 "$WORK/volumes.before" <(workspace_volumes))
    if [ -n "$vols" ]; then
      printf '[e2e] removing workspace volumes: %s\n' "$(tr '\n' ' ' <<<"$vols")" >&2
      # shellcheck disable=SC2086 # one volume name per word
      docker volume rm $vols >/dev/null
    fi
  fi
  rm -rf "$WORK"
  if [ "$rc" = 0 ]; then
    printf '\n[e2e] PASSED\n'
  else
    printf '\n[e2e] FAILED (exit %s)\n' "$rc" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# request METHOD PATH [BODY [CONTENT-TYPE]] -> prints the HTTP status; body in $WORK/body,
# headers in $WORK/headers.
request() {
  local method=$1 path=$2 body=${3-} ctype=${4:-application/json}
  local args=(-sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' -X "$method" --max-time 30)
  if [ -n "${GITWEAVE_API_TOKEN:-}" ]; then
    args+=(-H "Authorization: Bearer $GITWEAVE_API_TOKEN")
  fi
  if [ -n "$body" ]; then
    args+=(-H "Content-Type: $ctype" --data-binary "$body")
  fi
  curl "${args[@]}" "$path" || echo 000
}

# expect "what" STATUS... : the last request's status must be one of them.
expect() {
  local what=$1 got=$2
  shift 2
  local ok
  for ok in "$@"; do
    [ "$got" = "$ok" ] && { info "$what -> HTTP $got"; return 0; }
  done
  printf '         response body: %s\n' "$(head -c 2000 "$WORK/body" 2>/dev/null)" >&2
  fail "$what: expected HTTP $*, got $got"
}

# json EXPR: evaluates a Python expression over the last body, bound to `d`.
json() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=eval(sys.argv[2]); print(r if r is not None else "")' \
    "$WORK/body" "$1"
}

# ---------------------------------------------------------------------------------------
if [ "${SKIP_LOCAL_IMAGES:-0}" != 1 ]; then
  step "local base images (scripts/local-images.sh all)"
  "$ROOT/scripts/local-images.sh" all
fi
docker image inspect "$JOB_IMAGE" >/dev/null 2>&1 ||
  fail "$JOB_IMAGE is missing (scripts/local-images.sh job); the runner uses pull policy 'never'"

step "docker-compose up -d --build (project $PROJECT, gateway on port $GATEWAY_PORT)"
# A stack left over from an interrupted run would keep its old database volume.
"${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
"${COMPOSE[@]}" up -d --build || fail "docker-compose up failed"

step "waiting up to ${TIMEOUT}s for the gateway's /healthz and /readyz"
deadline=$((SECONDS + TIMEOUT))
for probe in healthz readyz; do
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/$probe" || true)
    [ "$code" = 200 ] && { info "/$probe -> 200"; break; }
    [ "$SECONDS" -lt "$deadline" ] || fail "gateway /$probe not 200 after ${TIMEOUT}s (last: ${code:-none})"
    sleep 2
  done
done

step "runner registration: a generated token, and none is refused"
TOKEN_LEN=$("${COMPOSE[@]}" exec -T runner-svc bash -c 'tr -d "\n" </run/gitweave-secrets/runner-registration-token | wc -c' | tr -d '[:space:]')
[ "$TOKEN_LEN" = 64 ] || fail "the generated registration token has $TOKEN_LEN characters, not 64"
info "secrets-init made a 64-character token"
# From inside the compose network (pipeline-svc publishes no port): register without it.
# shellcheck disable=SC2016 # expanded by the container's bash
REG=$("${COMPOSE[@]}" exec -T runner-svc bash -c '
  body="{\"name\": \"e2e-intruder\", \"capacity\": 1, \"engine\": \"shell\"}"
  exec 3<>/dev/tcp/pipeline-svc/8081
  printf "POST /internal/v1/runners/register HTTP/1.1\r\nHost: pipeline-svc\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s" "${#body}" "$body" >&3
  head -n 1 <&3' | awk '{print $2}')
[ "$REG" = 401 ] || fail "a registration without the token got HTTP ${REG:-nothing}, not 401"
info "registration without the token -> HTTP 401"

step "PUT /api/v1/repos/demo"
expect "create repo demo" "$(request PUT "$API/repos/demo" '{}')" 200 201

step "PUT /api/v1/templates/build (two jobs on $JOB_IMAGE sharing /workspace)"
# The first job writes a line that names its run into the workspace; the second job, in its
# own container, prints it. Seeing that line in job 2's log proves the shared workspace.
read -r -d '' TEMPLATE <<'YAML' || true
jobs:
  - name: write
    image: gitweave-busybox:latest
    script:
      - echo "job one says hello"
      - echo "handoff from job one of run $GITWEAVE_RUN_ID" > /workspace/handoff.txt
  - name: read
    image: gitweave-busybox:latest
    script:
      - test -f /workspace/handoff.txt
      - cat /workspace/handoff.txt
YAML
expect "store template build" "$(request PUT "$API/templates/build" "$TEMPLATE" application/yaml)" 200 201
info "$(cat "$WORK/body")"

step "PUT /api/v1/repos/demo/templates/build (attach)"
expect "attach build to demo" "$(request PUT "$API/repos/demo/templates/build" '{}')" 200 201 204

step "POST /api/v1/repos/demo/pipelines/run"
expect "trigger a run" "$(request POST "$API/repos/demo/pipelines/run" '{}')" 201
RUN_ID=$(json 'd["id"]')
[ -n "$RUN_ID" ] || fail "the run has no id: $(cat "$WORK/body")"
info "run $RUN_ID ($(json 'd.get("status")'))"

# wait_run RUN_ID: polls until the run ends; leaves its JSON in $WORK/body and its status in
# $status.
wait_run() {
  local run=$1 deadline=$((SECONDS + TIMEOUT)) last= code jobs
  while :; do
    code=$(request GET "$API/pipelines/runs/$run")
    [ "$code" = 200 ] || expect "GET run" "$code" 200
    status=$(json 'd["status"]')
    jobs=$(json '" ".join("%s=%s" % (j["name"], j["status"]) for j in d["jobs"])')
    if [ "$status $jobs" != "$last" ]; then
      info "run: $status; jobs: $jobs"
      last="$status $jobs"
    fi
    case "$status" in success | failed | canceled) return 0 ;; esac
    [ "$SECONDS" -lt "$deadline" ] || fail "run $run still '$status' after ${TIMEOUT}s"
    sleep 1
  done
}

step "polling the run until it ends (up to ${TIMEOUT}s)"
wait_run "$RUN_ID"
cp "$WORK/body" "$WORK/run.json"
if [ "$status" != success ]; then
  info "$(cat "$WORK/run.json")"
  for id in $(json '" ".join(j["id"] for j in d["jobs"])'); do
    request GET "$API/jobs/$id/logs/raw" >/dev/null
    printf '         --- log of job %s ---\n%s\n' "$id" "$(head -c 4000 "$WORK/body")"
  done
  fail "run $RUN_ID ended '$status', expected 'success'"
fi

# Job ids by name; accept "build/write" (SPEC: <template>/<job>) or a bare "write".
job_id() {
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for j in d["jobs"]:
    if j["name"] in (sys.argv[2], "build/" + sys.argv[2]):
        print(j["id"]); break' "$WORK/run.json" "$1"
}
JOB1=$(job_id write)
JOB2=$(job_id read)
if [ -z "$JOB1" ] || [ -z "$JOB2" ]; then
  fail "jobs write/read not found in $(cat "$WORK/run.json")"
fi
WANT="handoff from job one of run $RUN_ID"

step "GET /api/v1/jobs/$JOB2/logs (job 2 must print what job 1 wrote)"
deadline=$((SECONDS + 15))
while :; do
  expect "job 2 logs" "$(request GET "$API/jobs/$JOB2/logs")" 200
  [ "$(json 'd.get("complete")')" = True ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "job 2's log is not complete 15s after the run ended: $(cat "$WORK/body")"
  sleep 1
done
LOG2=$(json '"".join(c["data"] for c in d["chunks"])')
printf '%s\n' "$LOG2" | sed 's/^/         | /'
grep -qF "$WANT" <<<"$LOG2" || fail "job 2's log lacks '$WANT'"
info "found: $WANT"

step "GET /api/v1/jobs/$JOB2/logs/raw and /api/v1/jobs/$JOB1/logs/raw"
expect "job 2 raw log" "$(request GET "$API/jobs/$JOB2/logs/raw")" 200
grep -qF "$WANT" "$WORK/body" || fail "job 2's raw log lacks '$WANT': $(head -c 2000 "$WORK/body")"
grep -qi '^content-type: text/plain' "$WORK/headers" || info "(note: raw log Content-Type is $(grep -i '^content-type' "$WORK/headers" | tr -d '\r'))"
expect "job 1 raw log" "$(request GET "$API/jobs/$JOB1/logs/raw")" 200
grep -qF "job one says hello" "$WORK/body" || fail "job 1's raw log lacks 'job one says hello': $(head -c 2000 "$WORK/body")"
info "job 1 said hello; job 2 read the hand-off"

step "checkout through compose: a run at an older commit of a local bare repository"
# The runner runs in a container; the checkout's helper container mounts the clone URL's path
# from the Docker host. The job must see the older commit's file, not the branch head's.
SRC="$WORK/src" BARE="$WORK/shop.git"
git init -q "$SRC" && git -C "$SRC" checkout -q -b main
git -C "$SRC" -c user.name=e2e -c user.email=e2e@localhost commit -q --allow-empty -m init
echo "from the older commit" >"$SRC/version.txt"
git -C "$SRC" add version.txt && git -C "$SRC" -c user.name=e2e -c user.email=e2e@localhost commit -q -m older
OLD_SHA=$(git -C "$SRC" rev-parse HEAD)
echo "from the branch head" >"$SRC/version.txt"
git -C "$SRC" -c user.name=e2e -c user.email=e2e@localhost commit -q -am newer
git clone -q --bare "$SRC" "$BARE"
expect "repo shop with a clone URL" "$(request PUT "$API/repos/shop" "{\"clone_url\": \"file://$BARE\"}")" 201
read -r -d '' CHECKOUT_TEMPLATE <<'YAML' || true
jobs:
  - name: show
    image: gitweave-busybox:latest
    script:
      - cat version.txt
YAML
expect "store template show" "$(request PUT "$API/templates/show" "$CHECKOUT_TEMPLATE" application/yaml)" 200 201
expect "attach show to shop" "$(request PUT "$API/repos/shop/templates/show" '{}')" 201
expect "trigger at $OLD_SHA" "$(request POST "$API/repos/shop/pipelines/run" "{\"ref\": \"refs/heads/main\", \"commit\": \"$OLD_SHA\"}")" 201
SHOP_RUN=$(json 'd["id"]')
SHOP_JOB=$(json 'd["jobs"][0]["id"]')
wait_run "$SHOP_RUN"
expect "checkout job raw log" "$(request GET "$API/jobs/$SHOP_JOB/logs/raw")" 200
sed 's/^/         | /' "$WORK/body"
[ "$status" = success ] || fail "the checkout run ended '$status'"
grep -qx "from the older commit" "$WORK/body" || fail "the job did not see the older commit's file"
info "the job read the pushed (older) commit, not the branch head"

step "no job container left behind (label gitweave.job)"
deadline=$((SECONDS + 20))
while :; do
  job_containers >"$WORK/containers.after"
  left=$(comm -13 "$WORK/containers.before" "$WORK/containers.after")
  [ -z "$left" ] && { info "none"; break; }
  if [ "$SECONDS" -ge "$deadline" ]; then
    docker ps -a --filter label=gitweave.job --format '{{.ID}} {{.Image}} {{.Status}} {{.Labels}}' >&2
    # shellcheck disable=SC2086 # one container id per word
    docker rm -f $left >/dev/null 2>&1 || true
    fail "job containers left behind: $(tr '\n' ' ' <<<"$left")"
  fi
  sleep 1
done

step "docker-compose stop: every service exits cleanly on SIGTERM"
"${COMPOSE[@]}" stop -t 60 >/dev/null 2>&1
for svc in api-gateway pipeline-svc runner-svc; do
  cid=$("${COMPOSE[@]}" ps -q "$svc")
  code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
  [ "$code" = 0 ] || fail "$svc exited with $code on SIGTERM"
  info "$svc exited 0"
done
